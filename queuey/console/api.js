// The console's only way to the server: Queuey's public HTTP API, on this page's origin.
//
// The credential lives in sessionStorage: it is gone when the tab closes, no other
// tab sees it, and it is sent in the Authorization header only (never in a URL,
// except the short-lived scoped tokens of streams, which EventSource requires).

const SESSION_KEY = "queuey.console.session";

/** The signed-in session: {app, scheme: "Application" | "Bearer", secret}, or null. */
export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY));
  } catch {
    return null;
  }
}

export function signIn(app, scheme, secret) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ app, scheme, secret }));
}

export function signOut() {
  sessionStorage.removeItem(SESSION_KEY);
}

/** An answer other than 2xx: the status and the server's `error_msg` ({field: message}). */
export class ApiError extends Error {
  constructor(status, body) {
    const fields = (body && body.error_msg) || { [`HTTP ${status}`]: "The server answered without a JSON error." };
    super(Object.entries(fields).map(([key, text]) => `${key}: ${text}`).join("\n"));
    this.status = status;
    this.fields = fields;
  }
}

/** `/v1/{app}/...` with each segment encoded (queue names may hold `:`, `@`, `+`). */
export function path(...segments) {
  const s = session();
  return "/v1/" + [s.app, ...segments].map(encodeURIComponent).join("/");
}

/**
 * One API call. `query`: parameters (empty ones left out); `json`: a JSON body;
 * `body` + `headers`: anything else. Resolves to the parsed JSON answer, or throws ApiError.
 */
export async function call(method, url, { query, json, body, headers } = {}) {
  const target = new URL(url, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(key, value);
  }
  const sent = new Headers(headers);
  const s = session();
  if (s && !sent.has("Authorization")) sent.set("Authorization", `${s.scheme} ${s.secret}`);
  if (json !== undefined) {
    sent.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(target, { method, headers: sent, body, cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, { error_msg: { Network: `The server could not be reached (${error.message}).` } });
  }
  lastDate = Date.parse(response.headers.get("Date")) || Date.now();
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    // Not JSON: only the status is known (reported below).
  }
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

let lastDate = Date.now();

/** The server's clock (the Date of its last answer; this browser's before any), in ms. */
export function serverTime() {
  return lastDate;
}

// -- message ids and times ------------------------------------------------------

/**
 * A key that sorts message ids as the server orders them (SPEC §1): by the
 * version-1 UUID's 60-bit timestamp (time_hi, time_mid, time_low), then bytes 8-15.
 */
export function idOrder(id) {
  return id.slice(13, 16) + id.slice(8, 12) + id.slice(0, 8) + id.slice(16);
}

/** A message timestamp ("1795740103.4079008", seconds) as a Date (to the millisecond). */
export function timestampDate(timestamp) {
  const [seconds, fraction = "0"] = String(timestamp).split(".");
  return new Date(Number(seconds) * 1000 + Number(fraction.padEnd(3, "0").slice(0, 3)));
}

/** A Date as "YYYY-MM-DD HH:MM:SS.mmm" in the browser's time zone. */
export function formatTime(date) {
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
  );
}

/** The value of a datetime-local input (local time) as epoch seconds, for `since`. */
export function localInputSeconds(value) {
  const millis = new Date(value).getTime();
  if (Number.isNaN(millis)) return null;
  return (millis / 1000).toFixed(3);
}

/** A Date as the value of a datetime-local input with seconds (local time). */
export function localInputValue(date) {
  return formatTime(date).slice(0, 19).replace(" ", "T");
}

/** "1,3" or "2-4" or "all" as partition numbers (all: 1..count, when count is known). */
export function parsePartitions(text, count) {
  const value = (text || "").trim();
  if (value === "" || value === "all") {
    return count ? Array.from({ length: count }, (_, i) => i + 1) : [1];
  }
  const numbers = new Set();
  for (const part of value.split(",")) {
    const [low, high = low] = part.split("-").map((s) => Number.parseInt(s.trim(), 10));
    if (!Number.isInteger(low) || !Number.isInteger(high) || low < 1 || high < low) {
      throw new ApiError(400, { error_msg: { partitions: `"${part.trim()}" is not a partition number or range` } });
    }
    for (let n = low; n <= high; n++) numbers.add(n);
  }
  return [...numbers].sort((a, b) => a - b);
}
