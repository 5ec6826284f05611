// A one-shot message shown at the top of the next page render ("Secret X
// added."), announced to screen readers.

import { type Child, h } from "./dom";

let pending: Child[] = [];

export function flash(...message: Child[]): void {
  pending = message;
}

/** takeFlash returns the pending message as an element, once. */
export function takeFlash(): HTMLElement {
  const el = h("p", { id: "status", class: "status", role: "status", hidden: pending.length === 0 }, pending);
  pending = [];
  return el;
}
