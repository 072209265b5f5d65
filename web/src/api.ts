// Every call to the edge's REST API (/api/v1, same origin: no CORS).
//
// Each call starts its own trace: the browser sends a W3C traceparent with a fresh trace
// id, the edge's sidecar and every service's sidecar continue it, and Zipkin shows it
// under that id. So the page knows the trace id of each call without the edge having to
// return one (it returns x-request-id, which is shown too).
//
// Errors: the edge answers every failure with {code, message, details} (google.rpc.Status;
// BadRequest details carry field violations). ApiError keeps all of it and says in words
// what went wrong; forms put each field violation next to its field.

import { session } from "./session";

export interface CallInfo {
  method: string;
  path: string;
  status: number;
  ms: number;
  traceId: string;
  requestId: string;
  version: string; // x-meshmart-version: the recommendation release that answered
}

interface Violation {
  field: string;
  description: string;
}

interface StatusBody {
  code?: number;
  message?: string;
  details?: { "@type"?: string; fieldViolations?: Violation[] }[];
}

// google.rpc.Code names, for the words of an error.
const CODES: Record<number, string> = {
  1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
  5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
  9: "FAILED_PRECONDITION", 10: "ABORTED", 12: "UNIMPLEMENTED", 13: "INTERNAL",
  14: "UNAVAILABLE", 16: "UNAUTHENTICATED",
};

const ADVICE: Record<string, string> = {
  INVALID_ARGUMENT: "Please check the highlighted fields.",
  NOT_FOUND: "It does not exist (any more).",
  ALREADY_EXISTS: "It exists already.",
  PERMISSION_DENIED: "You are not allowed to do that.",
  UNAUTHENTICATED: "Please log in (again).",
  RESOURCE_EXHAUSTED: "Too many requests: wait a moment and try again.",
  FAILED_PRECONDITION: "That is not possible in the current state.",
  UNAVAILABLE: "A service is unavailable right now: try again in a moment.",
  DEADLINE_EXCEEDED: "The shop took too long to answer: try again.",
  INTERNAL: "Something broke on our side.",
  UNKNOWN: "Something unexpected went wrong.",
};

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly fields: Map<string, string>;
  readonly retryAfter: string;

  constructor(status: number, body: StatusBody, retryAfter = "") {
    const code = CODES[body.code ?? 2] ?? `HTTP ${status}`;
    const detail = (body.message ?? "").trim();
    const fields = new Map<string, string>();
    for (const d of body.details ?? []) {
      for (const v of d.fieldViolations ?? []) fields.set(v.field, v.description);
    }
    const advice = ADVICE[code] ?? "";
    const wait = retryAfter ? ` (retry after ${retryAfter} s)` : "";
    super([advice, detail && `The shop said: ${detail}.`].filter(Boolean).join(" ") + wait);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.fields = fields;
    this.retryAfter = retryAfter;
  }
}

type Listener = (call: CallInfo) => void;
const listeners: Listener[] = [];

/** Called after every API call (the mesh footer shows the last one). */
export function onCall(listener: Listener): void {
  listeners.push(listener);
}

function hex(bytes: number): string {
  const data = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(data, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const traceId = hex(16);
  const headers: Record<string, string> = { traceparent: `00-${traceId}-${hex(8)}-01` };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  const started = performance.now();
  let response: Response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { code: 14, message: "the shop cannot be reached (network error)" });
  }
  const text = await response.text();
  const info: CallInfo = {
    method, path, status: response.status, ms: Math.round(performance.now() - started), traceId,
    requestId: response.headers.get("x-request-id") ?? "",
    version: response.headers.get("x-meshmart-version") ?? "",
  };
  for (const listener of listeners) listener(info);
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const fallback = { code: 2, message: `HTTP ${response.status} ${response.statusText}` };
    const status = parsed && typeof parsed === "object" ? (parsed as StatusBody) : fallback;
    if (response.status === 401) session.clear();
    throw new ApiError(response.status, status, response.headers.get("retry-after") ?? "");
  }
  if (parsed === undefined) {
    throw new ApiError(response.status, { code: 2, message: "the answer was not JSON" });
  }
  return parsed as T;
}

export const get = <T>(path: string) => call<T>("GET", path);

/** A query string from the defined, non-empty values. */
export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== "") q.set(key, String(value));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
