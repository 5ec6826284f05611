// Runs: the team's run records (where each run is in its life, which
// secrets it received, which references resolved to nothing and why),
// "Start a run" for yourself (its ticket is shown once), and "explain a
// run" for asking why before running. Records never hold values.

import { ApiError, call, listAll, seg } from "../api";
import { badge, enumLabel, h, replace, table, time } from "../dom";
import { field, form, openPane, openPaneWith, splitNames } from "../forms";
import { bindingText } from "../hostbind";
import { onceField, onceWarning } from "../once";
import { session } from "../session";
import type { Agent, CandidateDecision, EgressCount, Environment, Explanation, InjectedSecret, Run, RunContext, StartedRun, UnresolvedReference } from "../types";
import { policyOf } from "./agents";
import type { Ctx } from "./page";
import { knownSecretNames } from "./refs";

const TRIGGERS = ["cli", "slack", "linear", "web", "api", "schedule", "integration"];

/** The list's filter, kept while the app is open (refreshes keep it). */
let inFlightOnly = false;

export async function renderRuns(main: HTMLElement, ctx: Ctx): Promise<void> {
  if (!ctx.team) {
    replace(main, h("h1", null, "Runs"), h("p", { class: "notice" }, "You are not a member of any team."));
    return;
  }
  const first = await runsList(ctx);
  if (!ctx.current()) return;
  const list = h("div", { id: "runs-list" }, first);
  // reload renders the list again in place, leaving an open pane (and the
  // ticket it shows) alone.
  const reload = async () => {
    try {
      const view = await runsList(ctx);
      if (ctx.current()) replace(list, view);
    } catch (e) {
      if (ctx.current()) replace(list, h("div", { class: "form-error", role: "alert" }, e instanceof Error ? e.message : String(e)));
    }
  };
  const filterButton = (id: string, label: string, inFlight: boolean) => {
    const b = h("button", { type: "button", id, class: "small", "aria-pressed": String(inFlightOnly === inFlight) }, label);
    b.addEventListener("click", () => {
      inFlightOnly = inFlight;
      for (const x of Array.from(filters.querySelectorAll("button"))) x.setAttribute("aria-pressed", String(x === b));
      void reload();
    });
    return b;
  };
  const filters = h("div", { class: "segmented", role: "group", "aria-label": "Show" });
  filters.append(filterButton("runs-filter-all", "All runs", false), filterButton("runs-filter-in-flight", "In flight", true));
  const start = h("button", { type: "button", id: "start-run", class: "primary", onclick: () => void openPaneWith("Start a run", () => openStartPane(ctx, reload)) }, "Start a run");
  const explain = h("button", { type: "button", id: "explain-run", onclick: () => openExplainPane(ctx) }, "Explain a run");
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Runs"), h("div", { class: "buttons" }, explain, start)),
    h(
      "p",
      { class: "lead" },
      "A run is started by its trigger and gets a one-time ticket; a runner redeems it and receives the run's secrets. Each run's record says which secrets it received (names, scopes and value versions, never values), which references resolved to nothing and why, and how it ended.",
    ),
    filters,
    list,
  );
}

async function runsList(ctx: Ctx): Promise<HTMLElement> {
  const resp = await call<{ runs?: Run[]; nextPageToken?: string }>("GET", `/v1/teams/${seg(ctx.team)}/runs`, undefined, {
    pageSize: 100,
    inFlight: inFlightOnly ? "true" : undefined,
  });
  const runs = resp.runs ?? [];
  const rows = runs.map((r) =>
    h(
      "tr",
      { "data-run": r.runId, "data-state": stateKey(r.state), "data-stale": r.holdsStaleValues ? "true" : null },
      h("td", { class: "name" }, h("a", { href: "#/runs/" + encodeURIComponent(r.runId) }, h("code", null, r.runId))),
      h("td", null, time(r.createTime)),
      h("td", { class: "state" }, stateView(r)),
      h("td", null, starter(r.startedBy)),
      h("td", null, triggerText(r.context)),
      h("td", null, r.agent || r.context?.agent || ""),
      h("td", null, r.context?.environment ?? ""),
      h("td", { class: "num" }, String(r.injected?.length ?? 0)),
      h("td", { class: "num" }, (r.unresolved?.length ?? 0) > 0 ? badge(String(r.unresolved.length), "warn") : "0"),
    ),
  );
  return h(
    "div",
    null,
    table(
      "runs",
      ["Run", "Started", "State", "Started by", "Trigger", "Executed as", "Environment", "Injected", "Unresolved"],
      rows,
      inFlightOnly ? "No run is in flight." : "No runs yet.",
    ),
    resp.nextPageToken ? h("p", { class: "sub" }, `Showing the ${runs.length} newest runs.`) : null,
  );
}

function userId(u: string | undefined): string {
  return (u ?? "").replace(/^users\//, "");
}

/** starter names who started a run: a person, an agent identity or an integration. */
function starter(name: string | undefined): string {
  const n = name ?? "";
  let m = /^users\/(.+)$/.exec(n);
  if (m) return m[1];
  m = /^teams\/[^/]+\/agents\/(.+)$/.exec(n);
  if (m) return "agent " + m[1];
  m = /^teams\/[^/]+\/integrations\/(.+)$/.exec(n);
  if (m) return "integration " + m[1];
  return n;
}

function triggerText(c: RunContext | null | undefined): string {
  const t = enumLabel(c?.trigger, "TRIGGER_");
  const u = userId(c?.user);
  return u && t !== "cli" && t !== "web" && t !== "api" ? `${t} (for ${u})` : t;
}

const STATES: Record<string, { label: string; kind: string; about: string }> = {
  RUN_STATE_STARTED: { label: "started", kind: "", about: "its ticket waits for a runner" },
  RUN_STATE_RESOLVED: { label: "in flight", kind: "live", about: "a runner received its secrets; its end is not reported yet" },
  RUN_STATE_ENDED: { label: "ended", kind: "ok", about: "its command ended" },
  RUN_STATE_FAILED: { label: "failed", kind: "warn", about: "strict, with unresolved references: nothing was handed out" },
  RUN_STATE_EXPIRED: { label: "expired", kind: "", about: "its ticket was never redeemed" },
};

function stateKey(state: string | undefined): string {
  return enumLabel(state, "RUN_STATE_").replaceAll(" ", "-");
}

/** stateView is the state's badge, the exit code once ended, and the stale flag. */
function stateView(r: Run): HTMLElement[] {
  const s = STATES[r.state];
  const out: HTMLElement[] = [];
  if (s) out.push(h("span", { class: "badge " + s.kind, title: s.about }, s.label));
  if (r.state === "RUN_STATE_ENDED" && r.end) out.push(h("span", { class: "sub exit" }, " exit " + r.end.exitCode));
  if (r.holdsStaleValues) {
    out.push(h("span", { class: "badge warn stale", title: "It holds a value rotated or deleted since it started" }, "stale values"));
  }
  return out;
}

/** duration shows a protobuf JSON duration ("75.2s") as "1m 15s". */
function duration(d: string | null | undefined): string {
  const m = /^(-?\d+(?:\.\d+)?)s$/.exec(d ?? "");
  if (!m) return "";
  const total = Number(m[1]);
  if (total < 10) return `${Math.round(total * 10) / 10}s`;
  const s = Math.round(total);
  const hours = Math.floor(s / 3600);
  const mins = Math.floor((s % 3600) / 60);
  const secs = s % 60;
  if (hours > 0) return `${hours}h ${mins}m`;
  return mins > 0 ? `${mins}m ${secs}s` : `${secs}s`;
}

function runList(c: RunContext | null | undefined): string {
  if (!c?.secrets) return "none";
  const names = c.secrets.names ?? [];
  return names.length === 0 ? "empty (nothing injected)" : names.join(", ");
}

function dl(items: [string, Node | Node[] | string][]): HTMLElement {
  return h(
    "dl",
    { class: "facts" },
    items.map(([k, v]) => [h("dt", null, k), h("dd", null, v === "" || (Array.isArray(v) && v.length === 0) ? "—" : v)]),
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

const VALUE_STATES: Record<string, [string, string]> = {
  INJECTED_VALUE_STATE_CURRENT: ["current", "ok"],
  INJECTED_VALUE_STATE_ROTATED: ["rotated since", "warn"],
  INJECTED_VALUE_STATE_DELETED: ["deleted since", "warn"],
};

export async function renderRun(main: HTMLElement, ctx: Ctx, runId: string): Promise<void> {
  const resp = await call<{ run: Run }>("GET", `/v1/teams/${seg(ctx.team)}/runs/${seg(runId)}`);
  if (!ctx.current()) return;
  const r = resp.run;
  const c = r.context;
  const inFlight = r.state === "RUN_STATE_RESOLVED";
  const injected = table(
    "injected",
    ["Name", "Scope", "Owner", "Value version", inFlight ? "Value now" : "", ""],
    (r.injected ?? []).map((s) => {
      const vs = VALUE_STATES[s.valueState ?? ""];
      return h(
        "tr",
        { "data-secret": s.redacted ? "" : s.secretName, "data-value-state": vs ? vs[0].split(" ")[0] : null },
        h("td", { class: "name" }, s.redacted ? h("span", { class: "sub" }, "(another user's personal secret)") : h("code", null, s.secretName)),
        h("td", null, badge(enumLabel(s.scope, "SECRET_SCOPE_"))),
        h("td", null, s.redacted ? "" : s.owner),
        h("td", { class: "num" }, s.redacted ? "" : "v" + s.valueVersion),
        h("td", { class: "value-state" }, vs ? badge(vs[0], vs[1]) : ""),
        h("td", { class: "notes" }, injectedNotes(s)),
      );
    }),
    "Nothing was injected.",
  );
  const s = STATES[r.state];
  const ended = r.state === "RUN_STATE_ENDED" && r.end;
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " / "),
    h("h1", null, "Run ", h("code", { id: "run-id" }, r.runId)),
    r.holdsStaleValues
      ? h(
          "p",
          { class: "notice warn", id: "run-stale" },
          "This run is in flight and holds values that have changed since it started: a secret it received was rotated or deleted. It keeps the old value until it ends.",
        )
      : null,
    dl([
      ["State", s ? [badge(s.label, s.kind), h("span", { class: "sub" }, " " + s.about)] : ""],
      ["Started", time(r.createTime)],
      ["Started by", starter(r.startedBy)],
      ["Trigger", enumLabel(c?.trigger, "TRIGGER_")],
      ["Triggering user", userId(c?.user)],
      ["Executed as", r.agent || c?.agent || ""],
      ["Environment", c?.environment ?? ""],
      ["Run's own secret list", runList(c)],
      ["Strict", c?.strict ? "yes" : "no"],
      [r.state === "RUN_STATE_EXPIRED" ? "Ticket expired" : "Ticket expires", r.resolveTime ? "redeemed" : time(r.ticketExpireTime)],
      ["Resolved", time(r.resolveTime)],
      ["Resolved by", r.resolvedBy],
      ["Allowlist from", enumLabel(r.allowlistSource, "ALLOWLIST_SOURCE_")],
      ["Ended", time(r.endTime)],
      ["Exit code", ended ? h("span", { id: "run-exit-code" }, String(r.end!.exitCode)) : ""],
      ...(ended && r.end!.signal ? ([["Signal", String(r.end!.signal)]] as [string, string][]) : []),
      ["Duration", ended ? duration(r.end!.duration) : ""],
    ]),
    h("h2", null, "Injected"),
    injected,
    h("h2", null, "Unresolved references"),
    unresolvedTable("unresolved", r.unresolved ?? []),
    (r.end?.egress ?? []).length > 0 ? [h("h2", null, "Egress"), egressTable(r.end!.egress!)] : null,
  );
}

/** injectedNotes says what else is true of an injected secret: an override, a binding. */
function injectedNotes(s: InjectedSecret): HTMLElement[] {
  const out: HTMLElement[] = [];
  if (s.overridesTeamSecret) out.push(h("span", null, "overrides the team secret of the same name"));
  const bound = bindingText(s.binding);
  if (bound) {
    out.push(
      h(
        "span",
        { class: "bound", title: "The agent got a placeholder; the runner's egress proxy put the value into requests to these hosts only" },
        (out.length > 0 ? "; " : "") + "bound to " + bound,
      ),
    );
  }
  return out;
}

/** egressTable is what the run's egress proxy did, per host, as the runner reported it. */
function egressTable(counts: EgressCount[]): HTMLElement {
  return table(
    "egress",
    ["Host", "Substitutions", "Refused"],
    counts.map((c) =>
      h(
        "tr",
        { "data-host": c.host },
        h("td", { class: "name" }, h("code", null, c.host)),
        h("td", { class: "num" }, c.substitutions ?? "0"),
        h("td", { class: "num" }, c.denials && c.denials !== "0" ? badge(c.denials, "warn") : "0"),
      ),
    ),
    "",
  );
}

/**
 * openStartPane starts a run for the caller (trigger web). On success the
 * pane shows the ticket once, with the runner's command; the list behind
 * it is reloaded.
 */
async function openStartPane(ctx: Ctx, reload: () => Promise<void>): Promise<void> {
  const [agents, envs, known] = await Promise.all([
    listAll<Agent>(`/v1/teams/${seg(ctx.team)}/agents`, "agents"),
    listAll<Environment>(`/v1/teams/${seg(ctx.team)}/environments`, "environments"),
    knownSecretNames(ctx),
  ]);
  agents.sort((a, b) => Number(b.default) - Number(a.default) || a.agentId.localeCompare(b.agentId));
  envs.sort((a, b) => a.environmentId.localeCompare(b.environmentId));
  const agent = field({
    id: "start-agent",
    label: "Execute as",
    fields: ["context.agent", "agent"],
    hint: "The agent identity the run executes as. Only team admins may choose an identity whose start policy is admins.",
    input: h(
      "select",
      null,
      agents.map((a) =>
        h(
          "option",
          { value: a.agentId, selected: a.default },
          a.agentId + (a.displayName && a.displayName !== a.agentId ? ` — ${a.displayName}` : "") + (a.default ? " (default)" : "") + (policyOf(a) === "admins" ? " · admins only" : ""),
        ),
      ),
    ),
  });
  const env = field({
    id: "start-environment",
    label: "Environment",
    fields: ["context.environment", "environment"],
    hint: "Its secret names are the run's allowlist, unless the run brings its own list.",
    input: h("select", null, h("option", { value: "" }, "none"), envs.map((e) => h("option", { value: e.environmentId }, e.environmentId))),
  });
  const listMode = field({
    id: "start-list-mode",
    label: "The run's own secret list",
    fields: [],
    input: h(
      "select",
      null,
      h("option", { value: "none" }, "none (the environment's list applies, if any)"),
      h("option", { value: "names" }, "only these names"),
      h("option", { value: "empty" }, "no secrets (an empty list: nothing is injected)"),
    ),
  });
  const listId = "start-known";
  const names = field({
    id: "start-secrets",
    label: "Names",
    fields: ["context.secrets", "secrets"],
    hint: "Secret names, separated by spaces or commas.",
    input: h("input", { type: "text", autocomplete: "off", spellcheck: "false", class: "mono", list: listId }),
  });
  names.row.hidden = true;
  listMode.input.addEventListener("change", () => (names.row.hidden = listMode.input.value !== "names"));
  const strict = h("input", { type: "checkbox", id: "start-strict", "data-fields": "context.strict", "aria-describedby": "start-strict-error" });
  const strictRow = h(
    "div",
    { class: "field" },
    h("label", { class: "radio" }, strict, " Strict: hand out nothing if any reference is unresolved"),
    h("p", { class: "field-error", id: "start-strict-error", role: "alert", hidden: true }),
  );
  const expiry = field({
    id: "start-ttl",
    label: "Ticket expires after (minutes)",
    fields: ["ttl"],
    hint: "A runner must redeem the ticket within this time: 10 minutes unless you choose otherwise, at most 60.",
    input: h("input", { type: "number", min: 1, max: 60, step: 1, value: 10, inputmode: "numeric" }),
  });
  const f = form(
    "start-run-form",
    async () => {
      const minutes = Number(expiry.input.value);
      if (!Number.isInteger(minutes) || minutes < 1 || minutes > 60) {
        throw new ApiError(0, 3, "The expiry is out of range.", [{ field: "ttl", description: "Enter whole minutes, from 1 to 60." }]);
      }
      const context: Record<string, unknown> = {
        // The gateway tells the services every REST call came "rest" (an
        // api run); the web app says what it is.
        trigger: "TRIGGER_WEB",
        agent: agent.input.value,
        environment: env.input.value,
        strict: strict.checked,
      };
      if (listMode.input.value === "names") context.secrets = { names: splitNames(names.input.value) };
      if (listMode.input.value === "empty") context.secrets = { names: [] };
      const started = await call<StartedRun>("POST", `/v1/teams/${seg(ctx.team)}/runs:start`, { context, ttl: `${minutes * 60}s` });
      showTicket(started);
      void reload();
    },
    h("p", null, `You start it for yourself (trigger web, as ${session.userId()}): it may receive your personal secrets. A runner then redeems its ticket.`),
    agent.row,
    env.row,
    listMode.row,
    names.row,
    h("datalist", { id: listId }, known.map((n) => h("option", { value: n }))),
    strictRow,
    expiry.row,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "start-run-submit" }, "Start run")),
  );
  openPane("Start a run", f);
}

/** showTicket replaces the start form with the ticket, shown only here. */
function showTicket(s: StartedRun): void {
  const command = `OZ_TICKET='${s.ticket}' oz exec --ticket-env OZ_TICKET -- COMMAND`;
  const view = h(
    "div",
    { id: "ticket" },
    onceWarning("ticket", "It is not stored anywhere you can read it back: close this pane and it is gone. A runner redeems it once, before it expires."),
    dl([
      ["Run", h("code", { id: "ticket-run-id" }, s.runId)],
      ["Expires", h("span", { id: "ticket-expires" }, time(s.expireTime))],
    ]),
    onceField("ticket-value", "Start ticket", s.ticket),
    onceField("ticket-command", "The runner's command", command, "On the runner, with its runner token in OZ_TOKEN; put the agent's command in place of COMMAND."),
  );
  openPane("Run started", view);
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

/** explainedBinding says how a bound candidate would reach the agent. */
function explainedBinding(c: CandidateDecision): HTMLElement | null {
  const bound = bindingText(c.binding);
  if (!bound) return null;
  const how = c.decision === "DECISION_INJECTED" ? "as a placeholder: bound to " : "bound to ";
  return h("span", { class: "bound" }, (c.detail ? "; " : "") + how + bound);
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
        h("td", null, c.detail, explainedBinding(c)),
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
