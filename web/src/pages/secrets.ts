// Secrets: the team's and the caller's personal secrets (metadata only:
// values are write-only), with add, rotate value, edit description, edit
// the binding to hosts and delete. Values are sealed in the browser before
// they are sent.

import { ApiError, call, listAll, seg } from "../api";
import { type Child, badge, enumLabel, h, replace, table, time } from "../dom";
import { closePane, confirm, field, fieldError, form, openPane } from "../forms";
import { HOSTS_FIELD, MIN_VALUE_LEN, bindingText, normalizeHosts, readBinding, splitHosts, valueError } from "../hostbind";
import { chooseKey, seal, sealInfo } from "../seal";
import { session } from "../session";
import { flash, takeFlash } from "../status";
import type { HostBinding, Run, SealedValue, SealingKey, Secret } from "../types";
import type { Ctx } from "./page";

export const SEALING_NOTE = "The value is encrypted in your browser before it is sent to the server.";

export async function renderSecrets(main: HTMLElement, ctx: Ctx): Promise<void> {
  const [teamSecrets, personal] = await Promise.all([
    ctx.team ? listAll<Secret>(`/v1/teams/${seg(ctx.team)}/secrets`, "secrets") : Promise.resolve([]),
    listAll<Secret>("/v1/users/me/secrets", "secrets"),
  ]);
  if (!ctx.current()) return;

  const all = [...teamSecrets, ...personal].sort(
    (a, b) => a.secretId.localeCompare(b.secretId) || a.scope.localeCompare(b.scope),
  );
  const rows = all.map((s) => secretRow(s, ctx));
  const add = h("button", { type: "button", id: "add-secret", class: "primary" }, "Add secret");
  add.addEventListener("click", () => openAddPane(ctx));

  replace(
    main,
    h(
      "div",
      { class: "page-head" },
      h("h1", null, "Secrets"),
      add,
    ),
    h(
      "p",
      { class: "lead" },
      ctx.team ? `Secrets of team ${ctx.team} and your personal secrets. ` : "Your personal secrets. ",
      "Values are write-only: nobody can read one back, here or anywhere else.",
    ),
    takeFlash(),
    table("secrets", ["Name", "Scope", "Description", "Bound to", "Last updated", ""], rows, "No secrets yet."),
  );
}

function canWrite(s: Secret, ctx: Ctx): boolean {
  if (s.scope === "SCOPE_PERSONAL") return s.owner === session.personalOwner();
  return ctx.admin && s.owner === "teams/" + ctx.team;
}

function secretRow(s: Secret, ctx: Ctx): HTMLTableRowElement {
  const scope = enumLabel(s.scope, "SCOPE_");
  const actions = canWrite(s, ctx)
    ? [
        h("button", { type: "button", class: "small", "data-action": "rotate", "aria-label": `Rotate the value of ${s.secretId}`, onclick: () => openRotatePane(s, ctx) }, "Rotate value"),
        h("button", { type: "button", class: "small", "data-action": "describe", "aria-label": `Edit the description of ${s.secretId}`, onclick: () => openDescribePane(s, ctx) }, "Edit description"),
        h("button", { type: "button", class: "small", "data-action": "bind", "aria-label": `Edit the hosts ${s.secretId} is bound to`, onclick: () => openBindingPane(s, ctx) }, "Edit binding"),
        h("button", { type: "button", class: "small danger", "data-action": "delete", "aria-label": `Delete ${s.secretId}`, onclick: () => confirmDelete(s, ctx) }, "Delete"),
      ]
    : [];
  if (s.scope === "SCOPE_TEAM" && ctx.admin) {
    actions.unshift(
      h("button", { type: "button", class: "small", "data-action": "usage", "aria-label": `Runs that received ${s.secretId}`, onclick: () => void openUsagePane(s, false) }, "Usage"),
    );
  }
  return h(
    "tr",
    { "data-secret": s.secretId, "data-scope": scope },
    h("td", { class: "name" }, h("code", null, s.secretId)),
    h("td", null, badge(scope, scope)),
    h("td", { class: "description" }, s.description),
    boundCell(s.binding),
    h(
      "td",
      { class: "updated" },
      time(s.updateTime),
      h("span", { class: "sub", "data-version": s.valueVersion }, `value v${s.valueVersion}`),
    ),
    h("td", { class: "actions" }, actions),
  );
}

/** boundCell lists the hosts a secret is bound to, or "—" when it is not bound. */
function boundCell(b: HostBinding | null | undefined): HTMLTableCellElement {
  const hosts = b?.hosts ?? [];
  if (hosts.length === 0) return h("td", { class: "bound" }, "—");
  const also = [b?.allowQuery ? "query string" : "", b?.allowBody ? "request body" : ""].filter((x) => x !== "");
  return h(
    "td",
    { class: "bound", "data-hosts": hosts.join(" ") },
    h("ul", { class: "kv" }, hosts.map((x) => h("li", null, h("code", null, x)))),
    also.length > 0 ? h("span", { class: "sub" }, "also in the " + also.join(" and ")) : null,
  );
}

/**
 * bindingInputs are the host patterns a secret is bound to (one per line;
 * commas and spaces also separate) and the two places besides headers
 * where the proxy may put the value, which apply only with hosts. Patterns
 * are checked when the field is left, with the secret store's rules
 * (hostbind.ts), and again on submit, before anything is sent.
 */
function bindingInputs(id: string, current: HostBinding | null | undefined, hint: Child) {
  const hosts = field({
    id: id + "-hosts",
    label: "Bound to hosts",
    fields: [HOSTS_FIELD, "binding"],
    hint,
    input: h("textarea", { rows: 3, autocomplete: "off", spellcheck: "false", autocapitalize: "off", class: "mono" }),
  });
  hosts.input.value = (current?.hosts ?? []).join("\n");
  const box = (where: string, label: string, checked: boolean) => {
    const input = h("input", { type: "checkbox", id: `${id}-allow-${where}`, checked });
    return { input, label: h("label", { class: "radio" }, input, " ", label) };
  };
  const query = box("query", "Also in the query string", !!current?.allowQuery);
  const body = box("body", "Also in the request body", !!current?.allowBody);
  const where = h(
    "fieldset",
    { class: "field", id: id + "-where" },
    h("legend", null, "Where the value is put"),
    query.label,
    body.label,
    h("p", { class: "hint" }, "Always in request headers (Authorization, other headers, user:password in the URL). Only with hosts."),
  );
  // The checkboxes mean nothing without hosts: disabled, they say so.
  const sync = () => {
    const none = splitHosts(hosts.input.value).length === 0;
    query.input.disabled = none;
    body.input.disabled = none;
  };
  hosts.input.addEventListener("input", sync);
  hosts.input.addEventListener("change", () => fieldError(hosts.input, normalizeHosts(hosts.input.value).errors));
  sync();
  return { rows: [hosts.row, where], read: () => readBinding(hosts.input.value, query.input.checked, body.input.checked) };
}

const PATTERN_HINT = "One pattern per line (commas also separate): api.example.com is that host only; *.example.com is any host under example.com, not example.com itself.";

/** valueInputs is the Value textarea, with a file picker for keys and JSON. */
function valueInputs(id: string) {
  const value = field({
    id,
    label: "Value",
    fields: ["value", "sealed_value"],
    hint: SEALING_NOTE,
    input: h("textarea", { rows: 4, autocomplete: "off", spellcheck: "false", autocapitalize: "off", class: "mono" }),
  });
  const file = h("input", { type: "file", id: id + "-file", "aria-label": "Value from a file" });
  const fileRow = h("div", { class: "field file" }, h("label", { for: id + "-file" }, "…or from a file"), file);
  file.addEventListener("change", () => {
    (value.input as HTMLTextAreaElement).disabled = !!file.files?.length;
  });
  const read = async (): Promise<Uint8Array> => {
    const f = file.files?.[0];
    const bytes = f ? new Uint8Array(await f.arrayBuffer()) : new TextEncoder().encode(value.input.value);
    if (bytes.length === 0) throw new ApiError(0, 3, "The value is empty.", [{ field: "value", description: "Enter a value (it must not be empty)." }]);
    return bytes;
  };
  return { rows: [value.row, fileRow], read };
}

/**
 * sealFor seals value for the secret `name` of `owner` ("teams/t" or
 * "users/u") to the store's current key. Nothing is sent unsealed: with no
 * usable key it fails.
 */
async function sealFor(owner: string, name: string, value: Uint8Array): Promise<SealedValue> {
  const resp = await call<{ keys?: SealingKey[] }>("GET", "/v1/sealingKeys");
  const key = chooseKey(resp.keys ?? []);
  if (!key) throw new Error("The server publishes no sealing key this browser can use, so the value was not sent.");
  return seal(key, sealInfo(owner, name), value);
}

function openAddPane(ctx: Ctx): void {
  const canTeam = ctx.admin && !!ctx.team;
  const name = field({
    id: "secret-name",
    label: "Name",
    fields: ["secret_id"],
    hint: "The environment variable it becomes: letters, digits and _, not starting with a digit.",
    input: h("input", { type: "text", autocomplete: "off", spellcheck: "false", autocapitalize: "characters", class: "mono" }),
  });
  const value = valueInputs("secret-value");
  const description = field({
    id: "secret-description",
    label: "Description",
    fields: ["description"],
    input: h("input", { type: "text", autocomplete: "off" }),
  });
  const radio = (v: string, label: string, checked: boolean) =>
    h("label", { class: "radio" }, h("input", { type: "radio", name: "scope", value: v, id: "scope-" + v, checked }), " ", label);
  const scope = h(
    "fieldset",
    { id: "secret-scope", "data-fields": "parent scope", class: "field" },
    h("legend", null, "Scope"),
    canTeam ? radio("team", `Team (${ctx.team})`, true) : null,
    radio("personal", "Personal (only your runs)", !canTeam),
    !canTeam && ctx.team ? h("p", { class: "hint" }, `Only admins of ${ctx.team} add team secrets.`) : null,
    h("p", { class: "field-error", id: "secret-scope-error", role: "alert", hidden: true }),
  );

  const binding = bindingInputs("secret", null, [
    "Optional. ",
    PATTERN_HINT,
    ` A run's agent then gets a placeholder instead of the value, and the runner's egress proxy puts the value into HTTPS requests to these hosts only. A bound value is at least ${MIN_VALUE_LEN} bytes on one line.`,
  ]);

  const f = form(
    "add-secret-form",
    async (f) => {
      const id = name.input.value.trim();
      const team = (f.querySelector<HTMLInputElement>("input[name=scope]:checked")?.value ?? "personal") === "team";
      const owner = team ? "teams/" + ctx.team : session.personalOwner();
      // Checked before the value is sealed: a bad pattern sends nothing.
      const bound = binding.read();
      const plain = await value.read();
      const bad = bound ? valueError(plain) : null;
      if (bad) throw new ApiError(0, 3, "The value cannot be bound to hosts.", [{ field: "value", description: bad }]);
      const sealedValue = await sealFor(owner, id, plain);
      await call("POST", `/v1/${owner}/secrets`, {
        secretId: id,
        sealedValue,
        description: description.input.value,
        binding: bound ?? undefined,
      });
      flash(`Secret ${id} added.`);
      closePane();
      ctx.refresh();
    },
    name.row,
    value.rows,
    description.row,
    binding.rows,
    scope,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "add-secret-submit" }, "Add secret")),
  );
  openPane("Add secret", f);
}

function openRotatePane(s: Secret, ctx: Ctx): void {
  const value = valueInputs("rotate-value");
  const f = form(
    "rotate-form",
    async () => {
      const sealedValue = await sealFor(s.owner, s.secretId, await value.read());
      await call("PATCH", `/v1/${s.name}`, { sealedValue });
      flash(`Value of ${s.secretId} rotated. `, await inFlightNote(s, ctx, "the previous value"));
      closePane();
      ctx.refresh();
    },
    h("p", null, "The new value replaces the current one for every run that starts from now on. Runs in flight keep the value they received."),
    value.rows,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "rotate-submit" }, "Rotate value")),
  );
  openPane(`Rotate ${s.secretId}`, f);
}

function openDescribePane(s: Secret, ctx: Ctx): void {
  const description = field({
    id: "edit-description",
    label: "Description",
    fields: ["description"],
    input: h("input", { type: "text", autocomplete: "off", value: s.description }),
  });
  const f = form(
    "describe-form",
    async () => {
      await call("PATCH", `/v1/${s.name}`, {
        description: description.input.value,
        updateMask: "description",
        etag: s.etag,
      });
      flash(`Description of ${s.secretId} saved.`);
      closePane();
      ctx.refresh();
    },
    description.row,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "describe-submit" }, "Save")),
  );
  openPane(`Edit ${s.secretId}`, f);
}

/**
 * openBindingPane edits the hosts s is bound to, replacing the binding
 * whole; with no hosts left, s is no longer bound. The change applies to
 * runs started from then on.
 */
function openBindingPane(s: Secret, ctx: Ctx): void {
  const binding = bindingInputs("binding", s.binding, [
    PATTERN_HINT,
    " Clear every host to unbind the secret: runs then receive its value itself.",
  ]);
  const f = form(
    "binding-form",
    async () => {
      const bound = binding.read();
      await call("PATCH", `/v1/${s.name}`, {
        binding: bound ?? undefined,
        updateMask: "binding",
        etag: s.etag,
      });
      flash(
        bound
          ? `${s.secretId} is bound to ${bindingText(bound)}.`
          : `${s.secretId} is no longer bound to hosts: runs started from now on receive its value.`,
      );
      closePane();
      ctx.refresh();
    },
    h(
      "p",
      null,
      "In a run, the agent gets a placeholder instead of the value, and the runner's egress proxy puts the value into HTTPS requests to these hosts only; a request that carries the placeholder anywhere else is refused. Runs in flight keep the binding they started with.",
    ),
    binding.rows,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "binding-submit" }, "Save binding")),
  );
  openPane(`Bind ${s.secretId} to hosts`, f);
}

function confirmDelete(s: Secret, ctx: Ctx): void {
  const scope = enumLabel(s.scope, "SCOPE_");
  confirm({
    title: `Delete ${s.secretId}?`,
    message: [
      h("p", null, `The ${scope} secret `, h("code", null, s.secretId), " and every stored version of its value will be deleted. This cannot be undone."),
      h("p", null, "Environments and agent identities that name it keep the reference: runs will report it as unresolved until a secret of that name exists again."),
    ],
    confirmLabel: "Delete secret",
    action: async () => {
      await call("DELETE", `/v1/${s.name}`);
      flash(`Secret ${s.secretId} deleted. `, await inFlightNote(s, ctx, "its value"));
      ctx.refresh();
    },
  });
}

/**
 * inFlightNote says how many runs in flight still hold a value of s that
 * was just rotated or deleted: the team's runs for a team secret, the runs
 * of each of the caller's teams for a personal one. The server marks each
 * injected entry of a run in flight as current, rotated or deleted.
 */
async function inFlightNote(s: Secret, ctx: Ctx, what: string): Promise<HTMLElement> {
  const teams = s.scope === "SCOPE_TEAM" ? [s.owner.replace(/^teams\//, "")] : (session.caller()?.teams ?? []).map((t) => t.team);
  const results = await Promise.allSettled(
    teams.map(async (team) => ({ team, runs: await listAll<Run>(`/v1/teams/${seg(team)}/runs`, "runs", { inFlight: "true" }) })),
  );
  const stale: { team: string; runId: string }[] = [];
  const failed: string[] = [];
  results.forEach((res, i) => {
    if (res.status === "rejected") {
      failed.push(`team ${teams[i]}: ${res.reason instanceof Error ? res.reason.message : String(res.reason)}`);
      return;
    }
    for (const r of res.value.runs) {
      const holds = (r.injected ?? []).some(
        (x) =>
          x.owner === s.owner &&
          x.secretName === s.secretId &&
          (x.valueState === "INJECTED_VALUE_STATE_ROTATED" || x.valueState === "INJECTED_VALUE_STATE_DELETED"),
      );
      if (holds) stale.push({ team: res.value.team, runId: r.runId });
    }
  });
  const n = stale.length;
  const parts: Child[] = [];
  if (n === 0) {
    parts.push(failed.length === teams.length && teams.length > 0 ? "" : `No run in flight holds ${what}.`);
  } else {
    const shown = stale.slice(0, 5).map((x, i) => [
      i > 0 ? ", " : "",
      x.team === ctx.team ? h("a", { href: "#/runs/" + encodeURIComponent(x.runId) }, h("code", null, x.runId)) : [h("code", null, x.runId), ` (team ${x.team})`],
    ]);
    parts.push(`${n} ${n === 1 ? "run in flight holds" : "runs in flight hold"} ${what}: `, shown, n > 5 ? ` and ${n - 5} more` : "", ".");
  }
  if (failed.length > 0) parts.push(` Could not check the runs in flight of ${failed.join("; ")}.`);
  return h("span", { id: "in-flight-note", "data-count": String(n) }, parts);
}

interface SecretUse {
  runId: string;
  time?: string | null;
  valueVersion: string;
  agent: string;
  trigger: string;
  runner: string;
}

/** openUsagePane lists the runs that received a team secret (from audit). */
async function openUsagePane(s: Secret, allVersions: boolean): Promise<void> {
  const body = h("div", { id: "usage" }, h("p", { class: "sub" }, "Loading…"));
  openPane(`Runs that received ${s.secretId}`, body);
  try {
    const resp = await call<{ usage?: { valueVersion: string; valueUpdateTime?: string; runs?: SecretUse[]; totalRuns?: number } }>(
      "GET",
      `/v1/${s.name}/usage`,
      undefined,
      { allVersions: allVersions ? "true" : undefined, maxRuns: 100 },
    );
    const u = resp.usage ?? { valueVersion: s.valueVersion, runs: [] };
    const runs = u.runs ?? [];
    // The secret's own metadata, where the audit log does not know it.
    const version = u.valueVersion && u.valueVersion !== "0" ? u.valueVersion : s.valueVersion;
    const changed = u.valueUpdateTime || s.valueUpdateTime;
    const other = h("button", { type: "button", class: "link", id: "usage-toggle", onclick: () => void openUsagePane(s, !allVersions) }, allVersions ? "Only since the last rotation" : "Include earlier versions");
    replace(
      body,
      h(
        "p",
        null,
        allVersions ? "Every run that received it, " : `Runs that received value v${version} (since its last change, `,
        allVersions ? "" : time(changed),
        allVersions ? "" : "), ",
        `newest first: ${u.totalRuns ?? runs.length} in all. `,
        other,
      ),
      table(
        "usage-runs",
        ["Run", "Time", "Value", "Trigger", "Executed as"],
        runs.map((r) =>
          h(
            "tr",
            { "data-run": r.runId },
            h("td", null, h("a", { href: "#/runs/" + encodeURIComponent(r.runId) }, h("code", null, r.runId))),
            h("td", null, time(r.time)),
            h("td", { class: "num" }, "v" + r.valueVersion),
            h("td", null, enumLabel(r.trigger, "TRIGGER_")),
            h("td", null, r.agent),
          ),
        ),
        "No run has received it.",
      ),
    );
  } catch (e) {
    replace(body, h("div", { class: "form-error", role: "alert" }, e instanceof Error ? e.message : String(e)));
  }
}
