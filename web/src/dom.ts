// DOM helpers. Everything the app shows is built with these: text goes in
// as text nodes (textContent), never as HTML, so data from the API or the
// user can never become markup or script. There is no innerHTML anywhere.

export type Child = Node | string | number | null | undefined | false | Child[];

export interface Attrs {
  [name: string]: string | number | boolean | null | undefined | EventListener;
}

/**
 * h creates an element. Attributes whose name starts with "on" are event
 * listeners ("onclick"); true sets a boolean attribute, false/null/undefined
 * omit it; strings among the children become text nodes.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

/** append adds children (text as text nodes) to el. */
export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** replace empties el and appends children. */
export function replace(el: Node, ...children: Child[]): void {
  while (el.firstChild) el.removeChild(el.firstChild);
  append(el, children);
}

/** table renders a header row and body rows; an empty body shows `empty`. */
export function table(
  id: string,
  headers: string[],
  rows: HTMLTableRowElement[],
  empty: string,
): HTMLElement {
  if (rows.length === 0) return h("p", { class: "empty", id: id + "-empty" }, empty);
  return h(
    "table",
    { id, class: "list" },
    h("thead", null, h("tr", null, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", null, rows),
  );
}

/** formatTime shows an RFC 3339 time in the user's locale ("" when unset). */
export function formatTime(rfc3339: string | undefined | null): string {
  if (!rfc3339) return "";
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime()) || d.getTime() <= 0) return "";
  const now = new Date();
  const sameDay =
    d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" })
    : d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
}

/** time renders a <time> with the full timestamp as its title. */
export function time(rfc3339: string | undefined | null): HTMLElement | string {
  const text = formatTime(rfc3339);
  if (!text || !rfc3339) return "—";
  return h("time", { datetime: rfc3339, title: new Date(rfc3339).toString() }, text);
}

/** badge is a small label. */
export function badge(text: string, kind = ""): HTMLElement {
  return h("span", { class: ("badge " + kind).trim() }, text);
}

/** enumLabel turns "SCOPE_TEAM" into "team" given the prefix "SCOPE_". */
export function enumLabel(value: string | undefined, prefix: string): string {
  if (!value) return "";
  const v = value.startsWith(prefix) ? value.slice(prefix.length) : value;
  if (v === "UNSPECIFIED") return "";
  return v.toLowerCase().replaceAll("_", " ");
}
