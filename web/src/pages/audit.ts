// Audit and Review, for team admins: the team's audit events, and the
// access review of its secrets. Both read what the audit service answers;
// where a gateway does not serve those routes, the API's error is shown.

import { call, seg } from "../api";
import { badge, enumLabel, h, replace, table, time } from "../dom";
import { field, form, showError } from "../forms";
import type { Ctx } from "./page";

type Obj = Record<string, unknown>;

/** text renders any JSON value for a table cell. */
function text(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return v.map(text).filter((s) => s !== "").join(", ");
  const o = v as Obj;
  return Object.entries(o)
    .filter(([, x]) => x !== "" && x !== null && x !== undefined && !(Array.isArray(x) && x.length === 0))
    .map(([k, x]) => `${k}=${text(x)}`)
    .join(" ");
}

function actorText(a: unknown): string {
  if (!a || typeof a !== "object") return text(a);
  const o = a as Obj;
  const who = text(o["name"] ?? o["id"] ?? o["principal"]);
  const client = text(o["client"]);
  return client ? `${who} (${client})` : who;
}

export async function renderAudit(main: HTMLElement, ctx: Ctx): Promise<void> {
  const results = h("div", { id: "audit-results" });
  const input = () => h("input", { type: "text", autocomplete: "off", spellcheck: "false" });
  const actor = field({ id: "audit-actor", label: "Actor", fields: ["actor"], input: input() });
  const action = field({ id: "audit-action", label: "Action", fields: ["action"], input: input() });
  const resource = field({ id: "audit-resource", label: "Resource", fields: ["resource"], input: input() });
  const runId = field({ id: "audit-run", label: "Run", fields: ["run_id"], input: input() });
  const outcome = field({
    id: "audit-outcome",
    label: "Outcome",
    fields: ["outcome"],
    input: h(
      "select",
      null,
      h("option", { value: "" }, "any"),
      ["OK", "DENIED", "FAILED"].map((o) => h("option", { value: "OUTCOME_" + o }, o.toLowerCase())),
    ),
  });
  const load = async () => {
    const resp = await call<Obj>("GET", `/v1/teams/${seg(ctx.team)}/events`, undefined, {
      pageSize: 100,
      actor: actor.input.value.trim(),
      action: action.input.value.trim(),
      resource: resource.input.value.trim(),
      runId: runId.input.value.trim(),
      outcome: outcome.input.value,
    });
    if (!ctx.current()) return;
    const events = (resp["events"] as Obj[] | undefined) ?? [];
    replace(
      results,
      table(
        "events",
        ["Time", "Actor", "Action", "Resource", "Outcome", "Run", "Details"],
        events.map((e) =>
          h(
            "tr",
            { "data-event": text(e["id"]) },
            h("td", null, time(text(e["time"]))),
            h("td", null, actorText(e["actor"])),
            h("td", null, h("code", null, text(e["action"]))),
            h("td", null, text(e["resource"])),
            h("td", null, outcomeBadge(text(e["outcome"]))),
            h("td", null, e["runId"] ? h("a", { href: "#/runs/" + encodeURIComponent(text(e["runId"])) }, text(e["runId"])) : ""),
            h("td", { class: "details" }, detailsList(e["details"])),
          ),
        ),
        "No events match.",
      ),
      resp["nextPageToken"] ? h("p", { class: "sub" }, `Showing the ${events.length} newest events.`) : null,
    );
  };
  const filters = form(
    "audit-filters",
    load,
    h("div", { class: "filters" }, actor.row, action.row, resource.row, runId.row, outcome.row),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "audit-submit" }, "Filter")),
  );
  const verifyResult = h("p", { id: "verify-result", class: "sub", role: "status" });
  const verify = h("button", { type: "button", id: "verify-chain" }, "Verify the chain");
  verify.addEventListener("click", async () => {
    verify.disabled = true;
    replace(verifyResult, "Verifying…");
    try {
      const r = await call<Obj>("POST", `/v1/teams/${seg(ctx.team)}/events:verify`, {});
      const brk = r["firstBreak"] as Obj | undefined;
      replace(
        verifyResult,
        r["valid"]
          ? badge("intact", "ok")
          : badge("broken", "warn"),
        " ",
        r["valid"]
          ? `${text(r["verifiedEvents"])} events verified, from the first to the newest.`
          : brk?.["eventId"]
            ? `First broken link at event ${text(brk?.["seq"])} (${text(brk?.["eventId"])}): ${text(brk?.["reason"])}`
            : // A log that went backwards: no event of its own to name.
              `Broken at event ${text(brk?.["seq"])}: ${text(brk?.["reason"])}`,
      );
    } catch (e) {
      replace(verifyResult, h("span", { class: "field-error" }, e instanceof Error ? e.message : String(e)));
    } finally {
      verify.disabled = false;
    }
  });
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Audit"), verify),
    h(
      "p",
      { class: "lead" },
      `Every change, every run resolution and every denied request of team ${ctx.team}, newest first. Events never hold a value. The log is a hash chain: verifying it checks that no event was changed, removed or reordered.`,
    ),
    verifyResult,
    filters,
    results,
  );
  try {
    await load();
  } catch (e) {
    showError(filters, e);
  }
}

/** detailsList shows an event's details map, one entry a line. */
function detailsList(d: unknown): HTMLElement | string {
  if (!d || typeof d !== "object") return text(d);
  const entries = Object.entries(d as Obj).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return "";
  return h("ul", { class: "kv" }, entries.map(([k, v]) => h("li", null, h("span", { class: "k" }, k), " ", text(v))));
}

function outcomeBadge(o: string): HTMLElement | string {
  const label = enumLabel(o, "OUTCOME_");
  return label ? badge(label, o === "OUTCOME_OK" ? "ok" : "warn") : "";
}

export async function renderReview(main: HTMLElement, ctx: Ctx): Promise<void> {
  const resp = await call<Obj>("GET", `/v1/teams/${seg(ctx.team)}/secrets:review`);
  if (!ctx.current()) return;
  const items = (resp["secrets"] as Obj[] | undefined) ?? [];
  const rows = items.map((s) => {
    const flags = ((s["flags"] as unknown[] | undefined) ?? []).map((f) => badge(enumLabel(text(f), "REVIEW_FLAG_"), "warn"));
    const name = text(s["secretId"]);
    const dangling = !s["valueVersion"];
    // Personal secrets' injections are not recorded by name (the audit log
    // counts them), so their last use is unknown: "—", not "never".
    const injected = s["injectionsTracked"] ? (s["lastInjectTime"] ? time(text(s["lastInjectTime"])) : "never") : dangling ? "" : "—";
    return h(
      "tr",
      { "data-secret": name, "data-scope": text(s["scope"]) },
      h("td", { class: "name" }, h("code", null, name)),
      h("td", null, enumLabel(text(s["scope"]), "SCOPE_")),
      h("td", { class: "num" }, dangling ? "" : "v" + text(s["valueVersion"])),
      h("td", null, s["valueUpdateTime"] ? time(text(s["valueUpdateTime"])) : ""),
      h("td", null, injected),
      h("td", null, ((s["agents"] as unknown[] | undefined) ?? []).map(text).join(", ")),
      h("td", null, ((s["environments"] as unknown[] | undefined) ?? []).map(text).join(", ")),
      h("td", null, flags),
    );
  });
  replace(
    main,
    h("h1", null, "Review"),
    h("p", { class: "lead" }, `Every secret of team ${ctx.team}: when it last changed and was last injected, who references it, and what needs attention.`),
    table("review", ["Name", "Scope", "Version", "Last updated", "Last injected", "Agents", "Environments", "Flags"], rows, "No secrets to review."),
  );
}
