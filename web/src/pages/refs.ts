// Secret references: the names an agent identity or an environment lists.
// Shared by the Agents and Environments pages.

import { call, listAll, seg } from "../api";
import { h } from "../dom";
import { closePane, confirm, field, form, openPane, splitNames } from "../forms";
import { flash } from "../status";
import type { Secret } from "../types";
import type { Ctx } from "./page";

/** knownSecretNames lists the names the caller can see, for suggestions. */
export async function knownSecretNames(ctx: Ctx): Promise<string[]> {
  const lists = await Promise.allSettled([
    ctx.team ? listAll<Secret>(`/v1/teams/${seg(ctx.team)}/secrets`, "secrets") : Promise.resolve([]),
    listAll<Secret>("/v1/users/me/secrets", "secrets"),
  ]);
  const names = new Set<string>();
  for (const l of lists) if (l.status === "fulfilled") for (const s of l.value) names.add(s.secretId);
  return [...names].sort();
}

interface RefTarget {
  kind: "agent" | "environment";
  id: string; // agent or environment id
  resource: string; // "teams/t/agents/a"
  names: string[];
  secretsExisting: Set<string>;
}

/**
 * refList shows the names, each with a detach button for admins; a name with
 * no secret behind it is marked (runs will report it as unresolved).
 */
export function refList(t: RefTarget, ctx: Ctx): HTMLElement {
  const items = t.names.map((n) => {
    const missing = !t.secretsExisting.has(n);
    return h(
      "li",
      { class: "ref" + (missing ? " missing" : ""), "data-ref": n },
      h("code", null, n),
      missing ? h("span", { class: "sub", title: "No secret of this name is visible to you" }, " (no such secret)") : null,
      ctx.admin
        ? h(
            "button",
            {
              type: "button",
              class: "icon",
              "data-action": "detach",
              "aria-label": `Detach ${n} from ${t.id}`,
              onclick: () => confirmDetach(t, n, ctx),
            },
            "×",
          )
        : null,
    );
  });
  if (items.length === 0) return h("span", { class: "sub" }, t.kind === "environment" ? "none (every candidate secret)" : "none");
  return h("ul", { class: "refs" }, items);
}

function confirmDetach(t: RefTarget, n: string, ctx: Ctx): void {
  confirm({
    title: `Detach ${n}?`,
    message: h("p", null, `${t.kind === "agent" ? "Agent identity" : "Environment"} ${t.id} will no longer reference `, h("code", null, n), ". The secret itself is not changed."),
    confirmLabel: "Detach",
    action: async () => {
      await call("PATCH", `/v1/${t.resource}`, { removeSecretNames: [n] });
      flash(`${n} detached from ${t.id}.`);
      ctx.refresh();
    },
  });
}

/** openAttachPane asks for names to add to the target's references. */
export async function openAttachPane(t: RefTarget, ctx: Ctx): Promise<void> {
  const known = await knownSecretNames(ctx);
  const listId = "attach-known";
  const names = field({
    id: "attach-names",
    label: "Secret names",
    fields: ["add_secret_names", "secret_names"],
    hint: "One or more names, separated by spaces or commas. A name need not exist yet: it is resolved at each run's start.",
    input: h("input", { type: "text", autocomplete: "off", spellcheck: "false", list: listId, class: "mono" }),
  });
  const datalist = h("datalist", { id: listId }, known.filter((n) => !t.names.includes(n)).map((n) => h("option", { value: n })));
  const f = form(
    "attach-form",
    async () => {
      const add = splitNames(names.input.value);
      await call("PATCH", `/v1/${t.resource}`, { addSecretNames: add });
      flash(`${add.join(", ")} attached to ${t.id}.`);
      closePane();
      ctx.refresh();
    },
    names.row,
    datalist,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "attach-submit" }, "Attach")),
  );
  openPane(`Attach secrets to ${t.id}`, f);
}
