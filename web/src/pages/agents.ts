// Agents: the team's agent identities, who may start runs as each (its
// start policy), and the team secrets each references (a referenced team
// secret is restricted to runs executing as one of the identities that
// reference it).

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
          h("button", { type: "button", class: "small", "data-action": "edit", "aria-label": `Edit ${a.agentId}`, onclick: () => openEditPane(a, ctx) }, "Edit"),
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
      h("td", { class: "policy", "data-policy": policyOf(a) }, policyOf(a) === "admins" ? "team admins" : "any member"),
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
      "Agent identities are the bot accounts runs execute as. A team secret that an identity references is restricted: only runs executing as an identity that references it receive it. An identity's start policy says who may start runs as it: team admins only (the default for a new identity) or any member; the default identity's is always any member.",
    ),
    takeFlash(),
    table("agents", ["Identity", "Display name", "Description", "Who may start runs", "Secret references", "Last updated", ""], rows, "No agent identities."),
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
  const policy = policyField("agent-start-policy", "admins");
  const f = form(
    "add-agent-form",
    async () => {
      const agentId = id.input.value.trim();
      await call("POST", `/v1/teams/${seg(ctx.team)}/agents`, {
        agentId,
        displayName: displayName.input.value,
        description: description.input.value,
        secretNames: splitNames(secrets.input.value),
        startPolicy: policy.input.value,
      });
      flash(`Agent identity ${agentId} added.`);
      closePane();
      ctx.refresh();
    },
    id.row,
    displayName.row,
    description.row,
    secrets.row,
    policy.row,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "add-agent-submit" }, "Add agent identity")),
  );
  openPane("Add agent identity", f);
}

const POLICY_HINT = "Who may start runs executing as this identity (for themselves, or through an integration they allowed). Its own tokens, and integrations created naming it, always may.";

/** policyOf is an identity's start policy; the default identity's is members. */
export function policyOf(a: Agent): "admins" | "members" {
  return a.default || a.startPolicy === "START_POLICY_MEMBERS" ? "members" : "admins";
}

function policyField(id: string, current: "admins" | "members") {
  return field({
    id,
    label: "Who may start runs",
    fields: ["start_policy"],
    hint: POLICY_HINT,
    input: h(
      "select",
      null,
      h("option", { value: "START_POLICY_ADMINS", selected: current === "admins" }, "Team admins only"),
      h("option", { value: "START_POLICY_MEMBERS", selected: current === "members" }, "Any member of the team"),
    ),
  });
}

/** openEditPane edits the display name, description and start policy. */
function openEditPane(a: Agent, ctx: Ctx): void {
  const displayName = field({ id: "edit-agent-display-name", label: "Display name", fields: ["display_name"], input: h("input", { type: "text", autocomplete: "off", value: a.displayName }) });
  const description = field({ id: "edit-agent-description", label: "Description", fields: ["description"], input: h("input", { type: "text", autocomplete: "off", value: a.description }) });
  // The default identity's policy is members, always: shown, not editable.
  const policy = a.default ? null : policyField("edit-agent-start-policy", policyOf(a));
  const policyRow =
    policy?.row ??
    h(
      "div",
      { class: "field" },
      h("p", { class: "label" }, "Who may start runs"),
      h("p", { id: "edit-agent-start-policy-fixed" }, "Any member of the team"),
      h("p", { class: "hint" }, "The default identity's start policy is always any member: runs with no identity chosen execute as it."),
    );
  const f = form(
    "edit-agent-form",
    async () => {
      const body: Record<string, unknown> = {
        displayName: displayName.input.value,
        description: description.input.value,
        updateMask: "displayName,description", // JSON field masks are lowerCamelCase
        etag: a.etag,
      };
      if (policy) {
        body.startPolicy = policy.input.value;
        body.updateMask += ",startPolicy";
      }
      await call("PATCH", `/v1/${a.name}`, body);
      flash(`Agent identity ${a.agentId} saved.`);
      closePane();
      ctx.refresh();
    },
    displayName.row,
    description.row,
    policyRow,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "edit-agent-submit" }, "Save")),
  );
  openPane(`Edit ${a.agentId}`, f);
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
