// The rules of a secret's binding to hosts (DESIGN §5.6), as lib/hostbind
// has them, so that the Add and Edit binding panes can say at once what is
// wrong with a pattern. The secret store checks the same rules again: this
// copy is for the person typing, not for enforcement.

import { ApiError } from "./api";
import type { HostBinding } from "./types";

/** MAX_HOSTS bounds the patterns of one binding (hostbind.MaxHosts). */
export const MAX_HOSTS = 20;

/** MIN_VALUE_LEN is the shortest value a binding may hold (hostbind.MinValueLen). */
export const MIN_VALUE_LEN = 8;

/** PLACEHOLDER_PREFIX starts every placeholder (hostbind.PlaceholderPrefix). */
export const PLACEHOLDER_PREFIX = "oz-ph-";

/** The API field a binding's patterns are reported under. */
export const HOSTS_FIELD = "binding.hosts";

/**
 * splitHosts splits what was typed into patterns: one per line, and commas
 * or spaces separate too (no pattern holds either).
 */
export function splitHosts(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter((x) => x !== "");
}

/**
 * patternError says what is wrong with the host pattern p, in the order
 * hostbind.ValidatePattern checks, or null when it is valid: an exact name
 * of two or more labels, or "*." and such a name.
 */
export function patternError(p: string): string | null {
  const wild = p.startsWith("*.");
  const name = wild ? p.slice(2) : p;
  const q = JSON.stringify(p);
  if (p === "") return "host pattern: must not be empty";
  if (p.includes(":") || p.startsWith("[")) return `host pattern ${q}: must not hold a port or an IPv6 literal`;
  if (name.includes("*")) return `host pattern ${q}: '*' is allowed only as the whole first label, as in *.example.com`;
  if (isIPv4(name)) return `host pattern ${q}: must be a host name, not an IP address`;
  if (name.endsWith(".")) return `host pattern ${q}: must not end with a dot`;
  if (!validHostName(name)) {
    return `host pattern ${q}: labels must be 1-63 characters of letters, digits, '-' and '_', the last not all digits`;
  }
  if (!name.includes(".")) {
    return wild ? `host pattern ${q}: the suffix after *. must have at least two labels` : `host pattern ${q}: must have at least two labels`;
  }
  return null;
}

/**
 * normalizeHosts validates the typed patterns and returns them lower-cased,
 * in order, without duplicates (hostbind.Normalize), or the errors, each
 * naming its pattern. An empty list is valid here: it means "not bound".
 */
export function normalizeHosts(text: string): { hosts: string[]; errors: string[] } {
  const hosts: string[] = [];
  const errors: string[] = [];
  for (const p of splitHosts(text)) {
    const err = patternError(p);
    if (err) errors.push(err);
    else if (!hosts.includes(p.toLowerCase())) hosts.push(p.toLowerCase());
  }
  if (errors.length === 0 && hosts.length > MAX_HOSTS) errors.push(`at most ${MAX_HOSTS} host patterns, got ${hosts.length}`);
  return { hosts, errors };
}

/**
 * readBinding is the binding the pane's inputs say, or null for "not
 * bound" (no hosts). Invalid patterns throw an ApiError whose violations
 * name HOSTS_FIELD, so the form shows them next to the hosts field and
 * sends nothing.
 */
export function readBinding(text: string, allowQuery: boolean, allowBody: boolean): HostBinding | null {
  const { hosts, errors } = normalizeHosts(text);
  if (errors.length > 0) {
    throw new ApiError(0, 3, "A host pattern is not valid.", errors.map((description) => ({ field: HOSTS_FIELD, description })));
  }
  if (hosts.length === 0) return null;
  return { hosts, allowQuery, allowBody };
}

/**
 * valueError says why value cannot be bound to hosts (hostbind.ValidateValue),
 * or null. It never quotes the value.
 */
export function valueError(value: Uint8Array): string | null {
  if (value.length < MIN_VALUE_LEN) return `must be at least ${MIN_VALUE_LEN} bytes for a secret bound to hosts`;
  if (value.some((b) => b === 0x0d || b === 0x0a || b === 0)) {
    return "must not contain CR, LF or NUL for a secret bound to hosts (it is sent in HTTP headers)";
  }
  // The prefix is ASCII, so a byte search is a string search.
  if (new TextDecoder("latin1").decode(value).includes(PLACEHOLDER_PREFIX)) {
    return `must not contain "${PLACEHOLDER_PREFIX}" for a secret bound to hosts`;
  }
  return null;
}

/** bindingText is a binding for people: "api.x.com, *.y.com (also in the query string)". */
export function bindingText(b: HostBinding | null | undefined): string {
  const hosts = b?.hosts ?? [];
  if (hosts.length === 0) return "";
  const also = [b?.allowQuery ? "the query string" : "", b?.allowBody ? "the request body" : ""].filter((x) => x !== "");
  return hosts.join(", ") + (also.length > 0 ? ` (also in ${also.join(" and ")})` : "");
}

// isIPv4 is what netip.ParseAddr accepts as IPv4: four decimal parts of
// 0-255 without leading zeros. (IPv6 holds ':' and is refused before.)
function isIPv4(h: string): boolean {
  const parts = h.split(".");
  return parts.length === 4 && parts.every((x) => /^(0|[1-9][0-9]{0,2})$/.test(x) && Number(x) <= 255);
}

// validHostName: dot-separated labels of 1-63 characters of [A-Za-z0-9_-],
// 253 characters at most, the last label not all digits.
function validHostName(h: string): boolean {
  if (h === "" || h.length > 253) return false;
  const labels = h.split(".");
  if (/^[0-9]*$/.test(labels[labels.length - 1])) return false;
  return labels.every((l) => /^[A-Za-z0-9_-]{1,63}$/.test(l));
}
