// Forms, the side pane and confirmations. API errors are shown next to the
// field they name (google.rpc.BadRequest field violations); anything not
// tied to a field is shown at the top of the form.

import { ApiError } from "./api";
import { type Child, h, replace } from "./dom";

/** Field is one labelled input of a form with its own error slot. */
export interface Field {
  row: HTMLElement;
  input: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement;
}

interface FieldOptions {
  id: string; // element id; the error slot is id + "-error"
  label: string;
  /** API field names whose violations belong here, e.g. "secret_id". */
  fields: string[];
  hint?: Child;
  input: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement;
}

export function field(o: FieldOptions): Field {
  const { input } = o;
  input.id = o.id;
  input.dataset.fields = o.fields.join(" ");
  const hintId = o.id + "-hint";
  const errId = o.id + "-error";
  input.setAttribute("aria-describedby", (o.hint ? hintId + " " : "") + errId);
  const row = h(
    "div",
    { class: "field" },
    h("label", { for: o.id }, o.label),
    input,
    o.hint ? h("p", { class: "hint", id: hintId }, o.hint) : null,
    h("p", { class: "field-error", id: errId, role: "alert", hidden: true }),
  );
  return { row, input };
}

/** form wraps fields with a form-level error slot and buttons. */
export function form(id: string, onSubmit: (f: HTMLFormElement) => Promise<void>, ...children: Child[]): HTMLFormElement {
  const errors = h("div", { class: "form-error", id: id + "-error", role: "alert", hidden: true });
  const f = h("form", { id, novalidate: true }, errors, children);
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(f);
    const buttons = Array.from(f.querySelectorAll<HTMLButtonElement>("button[type=submit]"));
    buttons.forEach((b) => (b.disabled = true));
    f.setAttribute("aria-busy", "true");
    try {
      await onSubmit(f);
    } catch (e) {
      showError(f, e);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
      f.removeAttribute("aria-busy");
    }
  });
  return f;
}

export function clearErrors(f: HTMLElement): void {
  for (const el of Array.from(f.querySelectorAll<HTMLElement>(".field-error, .form-error"))) {
    replace(el);
    el.hidden = true;
  }
  for (const el of Array.from(f.querySelectorAll("[aria-invalid]"))) el.removeAttribute("aria-invalid");
}

/**
 * showError puts each field violation under the input that claims its field
 * (exactly, or by its first path segment: "sealed_value.ciphertext" goes
 * to the input claiming "sealed_value"); the rest goes to the top.
 */
export function showError(f: HTMLElement, e: unknown): void {
  const top = f.querySelector<HTMLElement>(".form-error");
  const general: string[] = [];
  if (e instanceof ApiError) {
    const inputs = Array.from(f.querySelectorAll<HTMLElement>("[data-fields]"));
    for (const v of e.violations) {
      const base = v.field.split(/[.[]/)[0];
      const input =
        inputs.find((i) => i.dataset.fields!.split(" ").includes(v.field)) ??
        inputs.find((i) => i.dataset.fields!.split(" ").includes(base));
      const slot = input ? f.querySelector<HTMLElement>("#" + CSS.escape(input.id + "-error")) : null;
      if (input && slot) {
        input.setAttribute("aria-invalid", "true");
        slot.append(slot.textContent ? "; " + v.description : v.description);
        slot.hidden = false;
      } else {
        general.push(v.field ? `${v.field}: ${v.description}` : v.description);
      }
    }
    if (e.violations.length === 0 || general.length > 0) general.unshift(e.message);
  } else {
    general.push(e instanceof Error ? e.message : String(e));
  }
  if (top && general.length > 0) {
    replace(top, [...new Set(general)].map((m) => h("p", null, m)));
    top.hidden = false;
  }
}

/**
 * fieldError shows messages in the error slot of input (none: clears it),
 * outside a submit: for a check made as the person types, before anything
 * is sent.
 */
export function fieldError(input: HTMLElement, messages: string[]): void {
  const slot = document.getElementById(input.id + "-error");
  if (!slot) return;
  replace(slot, messages.join("; "));
  slot.hidden = messages.length === 0;
  if (messages.length > 0) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

// The side pane: one at a time, on the right, over the page.

let paneCloser: (() => void) | null = null;

export function openPane(title: string, ...content: Child[]): HTMLElement {
  const pane = document.getElementById("pane")!;
  paneCloser?.(); // a pane opened over another (a form, then its result)
  const heading = h("h2", { id: "pane-title" }, title);
  const close = h("button", { type: "button", class: "icon", id: "pane-close", "aria-label": "Close", onclick: () => closePane() }, "×");
  replace(pane, h("div", { class: "pane-head" }, heading, close), h("div", { class: "pane-body" }, content));
  pane.hidden = false;
  pane.setAttribute("aria-labelledby", "pane-title");
  document.body.classList.add("pane-open");
  const onKey = (ev: KeyboardEvent) => {
    if (ev.key === "Escape") closePane();
  };
  document.addEventListener("keydown", onKey);
  paneCloser = () => document.removeEventListener("keydown", onKey);
  const first = pane.querySelector<HTMLElement>("input:not([type=hidden]):not([disabled]), textarea, select");
  first?.focus();
  return pane;
}

/** openPaneWith opens a pane whose content needs data first; a failure shows in it. */
export async function openPaneWith(title: string, build: () => Promise<void>): Promise<void> {
  try {
    await build();
  } catch (e) {
    openPane(title, h("div", { class: "form-error", role: "alert" }, e instanceof Error ? e.message : String(e)));
  }
}

export function closePane(): void {
  const pane = document.getElementById("pane");
  if (!pane) return;
  // Drop the pane's content: a typed value must not linger in the DOM.
  replace(pane);
  pane.hidden = true;
  document.body.classList.remove("pane-open");
  paneCloser?.();
  paneCloser = null;
}

interface ConfirmOptions {
  title: string;
  message: Child;
  confirmLabel: string;
  action: () => Promise<void>;
}

/**
 * confirm asks in a modal dialog before running action; an error from the
 * action is shown in the dialog, which stays open.
 */
export function confirm(o: ConfirmOptions): void {
  const errors = h("div", { class: "form-error", id: "confirm-error", role: "alert", hidden: true });
  const dialog = h("dialog", { id: "confirm", "aria-labelledby": "confirm-title" });
  const cancel = h("button", { type: "button", id: "confirm-cancel", onclick: () => dialog.close() }, "Cancel");
  const ok = h("button", { type: "button", id: "confirm-ok", class: "danger" }, o.confirmLabel);
  ok.addEventListener("click", async () => {
    ok.disabled = true;
    clearErrors(dialog);
    try {
      await o.action();
      dialog.close();
    } catch (e) {
      showError(dialog, e);
    } finally {
      ok.disabled = false;
    }
  });
  append(dialog, h("h2", { id: "confirm-title" }, o.title), h("div", { class: "confirm-message" }, o.message), errors, h("div", { class: "actions" }, cancel, ok));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.appendChild(dialog);
  dialog.showModal();
  cancel.focus();
}

function append(el: HTMLElement, ...children: HTMLElement[]): void {
  for (const c of children) el.appendChild(c);
}

/** splitNames splits a list of secret names typed with commas or spaces. */
export function splitNames(s: string): string[] {
  return s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter((x) => x !== "");
}
