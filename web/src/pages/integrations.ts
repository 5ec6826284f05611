// Integrations: the team's principals that start runs for a trigger (a
// Slack or Linear app, a scheduler, another system). Every member sees
// them and allows or disallows, for themselves, those that start runs on a
// member's behalf; team admins create them (the token is shown once) and
// delete them.

import { call, listAll, seg } from "../api";
import { badge, enumLabel, h, replace, table, time } from "../dom";
import { confirm, field, form, openPane, openPaneWith, splitNames } from "../forms";
import { onceField, onceWarning } from "../once";
import { flash, takeFlash } from "../status";
import type { Agent, Integration } from "../types";
import { policyOf } from "./agents";
import type { Ctx } from "./page";

/** The triggers an integration may have; slack and linear carry a user. */
const TRIGGERS = [
  { value: "TRIGGER_SLACK", label: "slack", userless: false },
  { value: "TRIGGER_LINEAR", label: "linear", userless: false },
  { value: "TRIGGER_SCHEDULE", label: "schedule", userless: true },
  { value: "TRIGGER_INTEGRATION", label: "integration", userless: true },
];

function userless(trigger: string): boolean {
  return trigger === "TRIGGER_SCHEDULE" || trigger === "TRIGGER_INTEGRATION";
}

export async function renderIntegrations(main: HTMLElement, ctx: Ctx): Promise<void> {
  if (!ctx.team) {
    replace(main, h("h1", null, "Integrations"), h("p", { class: "notice" }, "You are not a member of any team."));
    return;
  }
  const first = await integrationsList(ctx);
  if (!ctx.current()) return;
  const list = h("div", { id: "integrations-list" }, first);
  // reload renders the list again in place, leaving the pane (and a token
  // it shows) alone.
  const reload = async () => {
    try {
      const view = await integrationsList(ctx);
      if (ctx.current()) replace(list, view);
    } catch (e) {
      if (ctx.current()) replace(list, h("div", { class: "form-error", role: "alert" }, e instanceof Error ? e.message : String(e)));
    }
  };
  const add = ctx.admin
    ? h("button", { type: "button", id: "add-integration", class: "primary", onclick: () => void openPaneWith("Create integration", () => openAddPane(ctx, reload)) }, "Create integration")
    : null;
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Integrations"), add),
    h(
      "p",
      { class: "lead" },
      "Integrations start runs for their trigger with their own token. A schedule or integration trigger starts runs without a user, which never receive personal secrets. A Slack or Linear integration starts runs on behalf of a member only if that member allowed it: allowing one lets its runs receive your personal secrets.",
    ),
    takeFlash(),
    list,
  );
}

async function integrationsList(ctx: Ctx): Promise<HTMLElement> {
  const items = await listAll<Integration>(`/v1/teams/${seg(ctx.team)}/integrations`, "integrations");
  items.sort((a, b) => a.integrationId.localeCompare(b.integrationId));
  const rows = items.map((i) => {
    const onBehalf = !userless(i.trigger);
    const actions = [
      onBehalf
        ? i.allowed
          ? h("button", { type: "button", class: "small", "data-action": "disallow", "aria-label": `Disallow ${i.integrationId}`, onclick: (ev: Event) => void setAllowed(ev, i, false, ctx) }, "Disallow")
          : h("button", { type: "button", class: "small", "data-action": "allow", "aria-label": `Allow ${i.integrationId}`, onclick: (ev: Event) => void setAllowed(ev, i, true, ctx) }, "Allow")
        : null,
      ctx.admin
        ? h("button", { type: "button", class: "small danger", "data-action": "delete", "aria-label": `Delete ${i.integrationId}`, onclick: () => confirmDelete(i, ctx) }, "Delete")
        : null,
    ];
    return h(
      "tr",
      { "data-integration": i.integrationId, "data-allowed": String(i.allowed) },
      h("td", { class: "name" }, h("code", null, i.integrationId)),
      h("td", null, enumLabel(i.trigger, "TRIGGER_")),
      h("td", null, (i.agents ?? []).length > 0 ? h("ul", { class: "refs" }, i.agents.map((a) => h("li", { class: "ref" }, h("code", null, a)))) : ""),
      h("td", { class: "description" }, i.description),
      h("td", null, i.createBy.replace(/^users\//, ""), " ", h("span", { class: "sub" }, time(i.createTime))),
      h(
        "td",
        { class: "allowed" },
        onBehalf ? (i.allowed ? badge("allowed", "ok") : badge("not allowed")) : h("span", { class: "sub" }, "not needed: no user"),
        h("p", { class: "field-error", role: "alert", hidden: true }),
      ),
      h("td", { class: "actions" }, actions),
    );
  });
  return table(
    "integrations",
    ["Integration", "Trigger", "Identities", "Description", "Created by", "On your behalf", ""],
    rows,
    "No integrations.",
  );
}

/** setAllowed allows or disallows i for the caller; an error shows in the row. */
async function setAllowed(ev: Event, i: Integration, allow: boolean, ctx: Ctx): Promise<void> {
  const button = ev.currentTarget as HTMLButtonElement;
  const slot = button.closest("tr")?.querySelector<HTMLElement>(".field-error");
  button.disabled = true;
  try {
    await call("POST", `/v1/${i.name}:${allow ? "allow" : "disallow"}`, {});
    flash(
      allow
        ? `You allowed ${i.integrationId} to start runs on your behalf.`
        : `${i.integrationId} no longer starts runs on your behalf.`,
    );
    ctx.refresh();
  } catch (e) {
    button.disabled = false;
    if (slot) {
      replace(slot, e instanceof Error ? e.message : String(e));
      slot.hidden = false;
    }
  }
}

async function openAddPane(ctx: Ctx, reload: () => Promise<void>): Promise<void> {
  const agents = await listAll<Agent>(`/v1/teams/${seg(ctx.team)}/agents`, "agents");
  const restricted = agents.filter((a) => policyOf(a) === "admins").map((a) => a.agentId).sort();
  const id = field({
    id: "integration-id",
    label: "Integration",
    fields: ["integration_id"],
    hint: "Lower-case letters, digits and -, starting with a letter.",
    input: h("input", { type: "text", autocomplete: "off", spellcheck: "false", class: "mono" }),
  });
  const trigger = field({
    id: "integration-trigger",
    label: "Trigger",
    fields: ["trigger"],
    hint: "slack and linear start runs on behalf of members who allowed it; schedule and integration start runs without a user.",
    input: h("select", null, TRIGGERS.map((t) => h("option", { value: t.value }, t.label))),
  });
  const listId = "integration-known-agents";
  const identities = field({
    id: "integration-agents",
    label: "Identities",
    fields: ["agents"],
    hint: "For schedule and integration only: agent identities whose start policy is admins that it may start runs as, separated by spaces or commas. Identities any member may use need not be named.",
    input: h("input", { type: "text", autocomplete: "off", spellcheck: "false", class: "mono", list: listId }),
  });
  const showIdentities = () => {
    const on = userless(trigger.input.value);
    identities.row.hidden = !on;
    (identities.input as HTMLInputElement).disabled = !on;
  };
  trigger.input.addEventListener("change", showIdentities);
  showIdentities();
  const description = field({ id: "integration-description", label: "Description", fields: ["description"], input: h("input", { type: "text", autocomplete: "off" }) });
  const f = form(
    "add-integration-form",
    async () => {
      const t = trigger.input.value;
      const resp = await call<{ integration: Integration; bearerToken: string }>("POST", `/v1/teams/${seg(ctx.team)}/integrations`, {
        integrationId: id.input.value.trim(),
        trigger: t,
        agents: userless(t) ? splitNames(identities.input.value) : [],
        description: description.input.value,
      });
      showToken(resp.integration, resp.bearerToken);
      void reload();
    },
    id.row,
    trigger.row,
    identities.row,
    h("datalist", { id: listId }, restricted.map((a) => h("option", { value: a }))),
    description.row,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "add-integration-submit" }, "Create integration")),
  );
  openPane("Create integration", f);
}

/** showToken replaces the form with the integration's token, shown only here. */
function showToken(i: Integration, token: string): void {
  openPane(
    `Integration ${i.integrationId} created`,
    h(
      "div",
      { id: "integration-created" },
      onceWarning("token", "Give it to the system that starts the runs (it calls runs:start with it as its bearer token). It cannot be shown again: a lost token means deleting the integration and creating it again."),
      onceField("integration-token", "Bearer token", token),
    ),
  );
}

function confirmDelete(i: Integration, ctx: Ctx): void {
  confirm({
    title: `Delete ${i.integrationId}?`,
    message: h(
      "p",
      null,
      `Integration ${i.integrationId} will be deleted and its tokens revoked: it starts no more runs. The allowances members gave it lapse; one created again under the same name starts with none.`,
    ),
    confirmLabel: "Delete integration",
    action: async () => {
      await call("DELETE", `/v1/${i.name}`);
      flash(`Integration ${i.integrationId} deleted.`);
      ctx.refresh();
    },
  });
}
