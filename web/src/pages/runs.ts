// Runs: the team's run records (which secrets each run received, which
// references resolved to nothing and why) and "explain a run" for asking
// why before running. Records never hold values.

import { call, seg } from "../api";
import { badge, enumLabel, h, replace, table, time } from "../dom";
import { field, form, openPane, splitNames } from "../forms";
import { session } from "../session";
import type { Explanation, Run, RunContext, UnresolvedReference } from "../types";
import type { Ctx } from "./page";

const TRIGGERS = ["cli", "slack", "linear", "web", "api", "schedule", "integration"];

export async function renderRuns(main: HTMLElement, ctx: Ctx): Promise<void> {
  if (!ctx.team) {
    replace(main, h("h1", null, "Runs"), h("p", { class: "notice" }, "You are not a member of any team."));
    return;
  }
  const resp = await call<{ runs?: Run[]; nextPageToken?: string }>("GET", `/v1/teams/${seg(ctx.team)}/runs`, undefined, { pageSize: 100 });
  if (!ctx.current()) return;
  const runs = resp.runs ?? [];
  const rows = runs.map((r) =>
    h(
      "tr",
      { "data-run": r.runId },
      h("td", { class: "name" }, h("a", { href: "#/runs/" + encodeURIComponent(r.runId) }, h("code", null, r.runId))),
      h("td", null, time(r.createTime)),
      h("td", null, enumLabel(r.context?.trigger, "TRIGGER_")),
      h("td", null, userId(r.context?.user)),
      h("td", null, r.agent),
      h("td", null, r.context?.environment ?? ""),
      h("td", { class: "num" }, String(r.injected?.length ?? 0)),
      h("td", { class: "num" }, (r.unresolved?.length ?? 0) > 0 ? badge(String(r.unresolved.length), "warn") : "0"),
      h("td", null, outcomeBadge(r.outcome)),
    ),
  );
  const explain = h("button", { type: "button", id: "explain-run", onclick: () => openExplainPane(ctx) }, "Explain a run");
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Runs"), explain),
    h("p", { class: "lead" }, "Each run's record says which secrets it received (names, scopes and value versions, never values) and which references resolved to nothing, and why."),
    table("runs", ["Run", "Started", "Trigger", "User", "Executed as", "Environment", "Injected", "Unresolved", "Outcome"], rows, "No runs yet."),
    resp.nextPageToken ? h("p", { class: "sub" }, `Showing the ${runs.length} newest runs.`) : null,
  );
}

function userId(u: string | undefined): string {
  return (u ?? "").replace(/^users\//, "");
}

function outcomeBadge(o: string): HTMLElement | string {
  const label = enumLabel(o, "RUN_OUTCOME_");
  return label ? badge(label, o === "RUN_OUTCOME_RESOLVED" ? "ok" : "warn") : "";
}

function runList(c: RunContext | null | undefined): string {
  if (!c?.secrets) return "none";
  const names = c.secrets.names ?? [];
  return names.length === 0 ? "empty (nothing injected)" : names.join(", ");
}

function dl(items: [string, Node | string][]): HTMLElement {
  return h(
    "dl",
    { class: "facts" },
    items.map(([k, v]) => [h("dt", null, k), h("dd", null, v === "" ? "—" : v)]),
  );
}

function unresolvedTable(id: string, refs: UnresolvedReference[]): HTMLElement {
  return table(
    id,
    ["Name", "Reason", "Detail"],
    refs.map((u) =>
      h(
        "tr",
        { "data-ref": u.secretName },
        h("td", { class: "name" }, h("code", null, u.secretName)),
        h("td", null, badge(enumLabel(u.reason, "UNRESOLVED_REASON_"), "warn")),
        h("td", null, u.detail),
      ),
    ),
    "None: every allowlisted name resolved.",
  );
}

export async function renderRun(main: HTMLElement, ctx: Ctx, runId: string): Promise<void> {
  const resp = await call<{ run: Run }>("GET", `/v1/teams/${seg(ctx.team)}/runs/${seg(runId)}`);
  if (!ctx.current()) return;
  const r = resp.run;
  const c = r.context;
  const injected = table(
    "injected",
    ["Name", "Scope", "Owner", "Value version", ""],
    (r.injected ?? []).map((s) =>
      h(
        "tr",
        { "data-secret": s.redacted ? "" : s.secretName },
        h("td", { class: "name" }, s.redacted ? h("span", { class: "sub" }, "(another user's personal secret)") : h("code", null, s.secretName)),
        h("td", null, badge(enumLabel(s.scope, "SECRET_SCOPE_"))),
        h("td", null, s.redacted ? "" : s.owner),
        h("td", { class: "num" }, s.redacted ? "" : "v" + s.valueVersion),
        h("td", null, s.overridesTeamSecret ? "overrides the team secret of the same name" : ""),
      ),
    ),
    "Nothing was injected.",
  );
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " / "),
    h("h1", null, "Run ", h("code", { id: "run-id" }, r.runId)),
    dl([
      ["Started", time(r.createTime)],
      ["Trigger", enumLabel(c?.trigger, "TRIGGER_")],
      ["Triggering user", userId(c?.user)],
      ["Executed as", r.agent],
      ["Environment", c?.environment ?? ""],
      ["Run's own secret list", runList(c)],
      ["Allowlist from", enumLabel(r.allowlistSource, "ALLOWLIST_SOURCE_")],
      ["Strict", c?.strict ? "yes" : "no"],
      ["Resolved by", r.resolvedBy],
      ["Outcome", outcomeBadge(r.outcome)],
    ]),
    h("h2", null, "Injected"),
    injected,
    h("h2", null, "Unresolved references"),
    unresolvedTable("unresolved", r.unresolved ?? []),
  );
}

function openExplainPane(ctx: Ctx): void {
  const trigger = field({
    id: "explain-trigger",
    label: "Trigger",
    fields: ["context.trigger", "trigger"],
    input: h("select", null, TRIGGERS.map((t) => h("option", { value: t, selected: t === "cli" }, t))),
  });
  const user = field({
    id: "explain-user",
    label: "Triggering user",
    fields: ["context.user", "user"],
    hint: "For cli, slack, linear, web and api triggers.",
    input: h("input", { type: "text", autocomplete: "off", value: session.userId() }),
  });
  const agent = field({ id: "explain-agent", label: "Agent identity", fields: ["context.agent", "agent"], input: h("input", { type: "text", autocomplete: "off" }) });
  const env = field({ id: "explain-environment", label: "Environment", fields: ["context.environment", "environment"], input: h("input", { type: "text", autocomplete: "off" }) });
  const listMode = field({
    id: "explain-list-mode",
    label: "The run's own secret list",
    fields: [],
    input: h(
      "select",
      null,
      h("option", { value: "none" }, "none (the environment's list applies)"),
      h("option", { value: "names" }, "these names"),
      h("option", { value: "empty" }, "an empty list (nothing)"),
    ),
  });
  const names = field({
    id: "explain-secrets",
    label: "Names",
    fields: ["context.secrets", "secrets"],
    input: h("input", { type: "text", autocomplete: "off", spellcheck: "false", class: "mono" }),
  });
  const result = h("div", { id: "explanation" });
  const f = form(
    "explain-form",
    async () => {
      const t = trigger.input.value;
      const userless = t === "schedule" || t === "integration";
      const context: Record<string, unknown> = {
        trigger: "TRIGGER_" + t.toUpperCase(),
        user: userless ? "" : user.input.value.trim(),
        agent: agent.input.value.trim(),
        environment: env.input.value.trim(),
      };
      if (listMode.input.value === "names") context.secrets = { names: splitNames(names.input.value) };
      if (listMode.input.value === "empty") context.secrets = { names: [] };
      const resp = await call<{ explanation: Explanation }>("POST", `/v1/teams/${seg(ctx.team)}/runs:explain`, { context });
      replace(result, explanationView(resp.explanation));
    },
    trigger.row,
    user.row,
    agent.row,
    env.row,
    listMode.row,
    names.row,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "explain-submit" }, "Explain")),
  );
  openPane("Explain a run", h("p", null, "What a run with this context would receive, and why. No value is read."), f, result);
}

function explanationView(x: Explanation): HTMLElement {
  const decisions = table(
    "candidates",
    ["Name", "Scope", "Decision", "Why"],
    (x.candidates ?? []).map((c) =>
      h(
        "tr",
        { "data-secret": c.secretName },
        h("td", { class: "name" }, h("code", null, c.secretName)),
        h("td", null, enumLabel(c.scope, "SECRET_SCOPE_")),
        h("td", null, badge(enumLabel(c.decision, "DECISION_"), c.decision === "DECISION_INJECTED" ? "ok" : "")),
        h("td", null, c.detail),
      ),
    ),
    "No candidate secrets.",
  );
  return h(
    "section",
    null,
    h("h3", null, "Explanation"),
    dl([
      ["Executes as", x.agent],
      ["Allowlist from", enumLabel(x.allowlistSource, "ALLOWLIST_SOURCE_")],
      ["Allowlist", (x.allowlist ?? []).join(", ")],
      ["Strict run would", x.wouldFailStrict ? "fail" : "succeed"],
    ]),
    (x.notes ?? []).map((n) => h("p", { class: "note" }, n)),
    decisions,
    h("h3", null, "Unresolved references"),
    unresolvedTable("explain-unresolved", x.unresolved ?? []),
  );
}
