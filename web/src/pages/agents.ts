// Agents: the team's agent identities and the team secrets each references
// (a referenced team secret is restricted to runs executing as one of the
// identities that reference it).

import { call, listAll, seg } from "../api";
import { badge, h, replace, table, time } from "../dom";
import { closePane, confirm, field, form, openPane, splitNames } from "../forms";
import { flash, takeFlash } from "../status";
import type { Agent } from "../types";
import type { Ctx } from "./page";
import { knownSecretNames, openAttachPane, refList } from "./refs";

export async function renderAgents(main: HTMLElement, ctx: Ctx): Promise<void> {
  if (!ctx.team) {
    replace(main, h("h1", null, "Agents"), h("p", { class: "notice" }, "You are not a member of any team."));
    return;
  }
  const [agents, known] = await Promise.all([
    listAll<Agent>(`/v1/teams/${seg(ctx.team)}/agents`, "agents"),
    knownSecretNames(ctx),
  ]);
  if (!ctx.current()) return;
  const existing = new Set(known);
  agents.sort((a, b) => Number(b.default) - Number(a.default) || a.agentId.localeCompare(b.agentId));

  const rows = agents.map((a) => {
    const resource = a.name;
    const target = { kind: "agent" as const, id: a.agentId, resource, names: a.secretNames ?? [], secretsExisting: existing };
    const actions = ctx.admin
      ? [
          h("button", { type: "button", class: "small", "data-action": "attach", "aria-label": `Attach secrets to ${a.agentId}`, onclick: () => void openAttachPane(target, ctx) }, "Attach secret"),
          a.default
            ? null
            : h("button", { type: "button", class: "small danger", "data-action": "delete", "aria-label": `Delete ${a.agentId}`, onclick: () => confirmDelete(a, ctx) }, "Delete"),
        ]
      : [];
    return h(
      "tr",
      { "data-agent": a.agentId },
      h("td", { class: "name" }, h("code", null, a.agentId), a.default ? [" ", badge("default")] : null),
      h("td", null, a.displayName),
      h("td", { class: "description" }, a.description),
      h("td", null, refList(target, ctx)),
      h("td", null, time(a.updateTime)),
      h("td", { class: "actions" }, actions),
    );
  });

  const add = ctx.admin ? h("button", { type: "button", id: "add-agent", class: "primary", onclick: () => openAddPane(ctx) }, "Add agent identity") : null;
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Agents"), add),
    h(
      "p",
      { class: "lead" },
      "Agent identities are the bot accounts runs execute as. A team secret that an identity references is restricted: only runs executing as an identity that references it receive it.",
    ),
    takeFlash(),
    table("agents", ["Identity", "Display name", "Description", "Secret references", "Last updated", ""], rows, "No agent identities."),
  );
}

function openAddPane(ctx: Ctx): void {
  const id = field({
    id: "agent-id",
    label: "Identity",
    fields: ["agent_id"],
    hint: "Lower-case letters, digits and -, starting with a letter.",
    input: h("input", { type: "text", autocomplete: "off", spellcheck: "false", class: "mono" }),
  });
  const displayName = field({ id: "agent-display-name", label: "Display name", fields: ["display_name"], input: h("input", { type: "text", autocomplete: "off" }) });
  const description = field({ id: "agent-description", label: "Description", fields: ["description"], input: h("input", { type: "text", autocomplete: "off" }) });
  const secrets = field({
    id: "agent-secrets",
    label: "Secret references",
    fields: ["secret_names"],
    hint: "Team secret names, separated by spaces or commas. Each becomes restricted to this identity (and any other that references it).",
    input: h("input", { type: "text", autocomplete: "off", spellcheck: "false", class: "mono" }),
  });
  const f = form(
    "add-agent-form",
    async () => {
      const agentId = id.input.value.trim();
      await call("POST", `/v1/teams/${seg(ctx.team)}/agents`, {
        agentId,
        displayName: displayName.input.value,
        description: description.input.value,
        secretNames: splitNames(secrets.input.value),
      });
      flash(`Agent identity ${agentId} added.`);
      closePane();
      ctx.refresh();
    },
    id.row,
    displayName.row,
    description.row,
    secrets.row,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "add-agent-submit" }, "Add agent identity")),
  );
  openPane("Add agent identity", f);
}

function confirmDelete(a: Agent, ctx: Ctx): void {
  confirm({
    title: `Delete ${a.agentId}?`,
    message: h("p", null, `Agent identity ${a.agentId} will be deleted and its tokens revoked. Secrets it referenced stay; those no other identity references become available to every run of the team.`),
    confirmLabel: "Delete identity",
    action: async () => {
      await call("DELETE", `/v1/${a.name}`);
      flash(`Agent identity ${a.agentId} deleted.`);
      ctx.refresh();
    },
  });
}
