// Credentials the server shows only once (a run's start ticket, an
// integration's token): a read-only field with a copy button. They live in
// the DOM of the side pane only, never in storage, and go when it closes.

import { type Child, h, replace } from "./dom";

/**
 * onceField shows value read-only, with a copy button. Multi-line values
 * (a command) use a textarea.
 */
export function onceField(id: string, label: string, value: string, hint?: Child): HTMLElement {
  const input = value.includes("\n")
    ? h("textarea", { id, readonly: true, rows: 3, spellcheck: "false", class: "mono" })
    : h("input", { type: "text", id, readonly: true, spellcheck: "false", autocomplete: "off", class: "mono" });
  input.value = value;
  input.addEventListener("focus", () => input.select());
  const status = h("span", { class: "sub", id: id + "-copied", role: "status" });
  const copy = h("button", { type: "button", class: "small", id: id + "-copy", "aria-label": "Copy " + label.toLowerCase() }, "Copy");
  copy.addEventListener("click", async () => {
    replace(status, (await copyText(input)) ? "Copied." : "Select it and copy it (Ctrl+C).");
  });
  return h(
    "div",
    { class: "field once" },
    h("label", { for: id }, label),
    h("div", { class: "copy-row" }, input, copy),
    status,
    hint ? h("p", { class: "hint" }, hint) : null,
  );
}

/** onceWarning says the value cannot be shown again. */
export function onceWarning(what: string, rest: string): HTMLElement {
  return h("p", { class: "once-warning", role: "alert" }, h("strong", null, `Copy the ${what} now: it is shown only this once.`), " ", rest);
}

async function copyText(input: HTMLInputElement | HTMLTextAreaElement): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(input.value);
    return true;
  } catch {
    input.focus();
    input.select();
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    }
  }
}
