// A one-shot message shown at the top of the next page render ("Secret X
// added."), announced to screen readers.

import { h } from "./dom";

let pending = "";

export function flash(message: string): void {
  pending = message;
}

/** takeFlash returns the pending message as an element, once. */
export function takeFlash(): HTMLElement {
  const el = h("p", { id: "status", class: "status", role: "status", hidden: !pending }, pending);
  pending = "";
  return el;
}
