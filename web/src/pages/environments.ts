// Environments: the secret names a run using the environment is allowed
// (its default allowlist), with attach and detach.

import { call, listAll, seg } from "../api";
import { h, replace, table, time } from "../dom";
import { closePane, confirm, field, form, openPane, splitNames } from "../forms";
import { flash, takeFlash } from "../status";
import type { Environment } from "../types";
import type { Ctx } from "./page";
import { knownSecretNames, openAttachPane, refList } from "./refs";

export async function renderEnvironments(main: HTMLElement, ctx: Ctx): Promise<void> {
  if (!ctx.team) {
    replace(main, h("h1", null, "Environments"), h("p", { class: "notice" }, "You are not a member of any team."));
    return;
  }
  const [envs, known] = await Promise.all([
    listAll<Environment>(`/v1/teams/${seg(ctx.team)}/environments`, "environments"),
    knownSecretNames(ctx),
  ]);
  if (!ctx.current()) return;
  const existing = new Set(known);
  envs.sort((a, b) => a.environmentId.localeCompare(b.environmentId));

  const rows = envs.map((e) => {
    const target = { kind: "environment" as const, id: e.environmentId, resource: e.name, names: e.secretNames ?? [], secretsExisting: existing };
    const actions = ctx.admin
      ? [
          h("button", { type: "button", class: "small", "data-action": "attach", "aria-label": `Attach secrets to ${e.environmentId}`, onclick: () => void openAttachPane(target, ctx) }, "Attach secret"),
          h("button", { type: "button", class: "small danger", "data-action": "delete", "aria-label": `Delete ${e.environmentId}`, onclick: () => confirmDelete(e, ctx) }, "Delete"),
        ]
      : [];
    return h(
      "tr",
      { "data-environment": e.environmentId },
      h("td", { class: "name" }, h("code", null, e.environmentId)),
      h("td", { class: "description" }, e.description),
      h("td", null, refList(target, ctx)),
      h("td", null, time(e.updateTime)),
      h("td", { class: "actions" }, actions),
    );
  });

  const add = ctx.admin ? h("button", { type: "button", id: "add-environment", class: "primary", onclick: () => openAddPane(ctx) }, "Add environment") : null;
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Environments"), add),
    h(
      "p",
      { class: "lead" },
      "An environment's secret names are the allowlist of the runs that use it (unless a run brings its own list). Names are resolved at each run's start: a name with no secret behind it is reported as unresolved.",
    ),
    takeFlash(),
    table("environments", ["Environment", "Description", "Secrets", "Last updated", ""], rows, "No environments yet."),
  );
}

function openAddPane(ctx: Ctx): void {
  const id = field({
    id: "environment-id",
    label: "Environment",
    fields: ["environment_id"],
    hint: "Lower-case letters, digits and -, starting with a letter.",
    input: h("input", { type: "text", autocomplete: "off", spellcheck: "false", class: "mono" }),
  });
  const description = field({ id: "environment-description", label: "Description", fields: ["description"], input: h("input", { type: "text", autocomplete: "off" }) });
  const secrets = field({
    id: "environment-secrets",
    label: "Secrets",
    fields: ["secret_names"],
    hint: "Secret names, separated by spaces or commas.",
    input: h("input", { type: "text", autocomplete: "off", spellcheck: "false", class: "mono" }),
  });
  const f = form(
    "add-environment-form",
    async () => {
      const environmentId = id.input.value.trim();
      await call("POST", `/v1/teams/${seg(ctx.team)}/environments`, {
        environmentId,
        description: description.input.value,
        secretNames: splitNames(secrets.input.value),
      });
      flash(`Environment ${environmentId} added.`);
      closePane();
      ctx.refresh();
    },
    id.row,
    description.row,
    secrets.row,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "add-environment-submit" }, "Add environment")),
  );
  openPane("Add environment", f);
}

function confirmDelete(e: Environment, ctx: Ctx): void {
  confirm({
    title: `Delete ${e.environmentId}?`,
    message: h("p", null, `Environment ${e.environmentId} will be deleted. Runs that name it will fail to resolve. The secrets it lists are not changed.`),
    confirmLabel: "Delete environment",
    action: async () => {
      await call("DELETE", `/v1/${e.name}`);
      flash(`Environment ${e.environmentId} deleted.`);
      ctx.refresh();
    },
  });
}
