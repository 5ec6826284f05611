// The REST client: JSON over fetch to the gateway that served the app,
// with the signed-in token as a bearer header. No cookies are sent or set.

import { session } from "./session";

/** FieldViolation is one entry of a google.rpc.BadRequest detail. */
export interface FieldViolation {
  field: string;
  description: string;
}

/**
 * ApiError is a failed call: the gRPC code and message of grpc-gateway's
 * error body, and the field violations of its BadRequest details.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    readonly violations: FieldViolation[] = [],
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** notDeployed: the route does not exist on this gateway (yet). */
  get notDeployed(): boolean {
    return this.status === 404 && this.code === 5 && /^Not Found$/i.test(this.message);
  }
}

/** Called when the token is refused (401): the app signs out. */
let onUnauthenticated: (message: string) => void = () => {};

export function setUnauthenticatedHandler(fn: (message: string) => void): void {
  onUnauthenticated = fn;
}

type Query = Record<string, string | number | undefined>;

/** call sends one request and returns the decoded JSON body. */
export async function call<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = session.token();
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") q.set(k, String(v));
    const s = q.toString();
    if (s) url += "?" + s;
  }
  let resp: Response;
  try {
    resp = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      redirect: "error",
    });
  } catch (e) {
    throw new ApiError(0, 14, "cannot reach the gateway: " + String(e));
  }
  const text = await resp.text();
  let data: unknown = undefined;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
  }
  if (!resp.ok) {
    const err = toError(resp.status, data, text);
    if (resp.status === 401) onUnauthenticated(err.message);
    throw err;
  }
  return (data ?? {}) as T;
}

function toError(status: number, data: unknown, text: string): ApiError {
  if (data && typeof data === "object") {
    const d = data as { code?: number; message?: string; details?: unknown[] };
    const violations: FieldViolation[] = [];
    for (const det of d.details ?? []) {
      const dd = det as { "@type"?: string; fieldViolations?: FieldViolation[] };
      if (dd["@type"]?.endsWith("google.rpc.BadRequest")) {
        for (const v of dd.fieldViolations ?? []) violations.push({ field: v.field ?? "", description: v.description ?? "" });
      }
    }
    const message = d.message || `HTTP ${status}`;
    // A refusal without details may still name its field the way the
    // services write one ("context.agent: agent identity … admits only …"):
    // take it as that field's violation, so it is shown next to the field.
    const named = violations.length === 0 ? /^([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*): (.+)$/s.exec(message) : null;
    if (named) violations.push({ field: named[1], description: named[2] });
    return new ApiError(status, d.code ?? 2, message, violations);
  }
  return new ApiError(status, 2, text.trim().slice(0, 200) || `HTTP ${status}`);
}

/** listAll follows next_page_token until every item of `key` is read. */
export async function listAll<T>(path: string, key: string, query: Query = {}, limit = 5000): Promise<T[]> {
  const out: T[] = [];
  let pageToken = "";
  for (;;) {
    const page = await call<Record<string, unknown>>("GET", path, undefined, { ...query, pageSize: 1000, pageToken });
    out.push(...((page[key] as T[] | undefined) ?? []));
    pageToken = (page["nextPageToken"] as string | undefined) ?? "";
    if (!pageToken || out.length >= limit) return out;
  }
}

/** seg escapes one path segment (team, user, secret, run ids). */
export function seg(s: string): string {
  return encodeURIComponent(s);
}
