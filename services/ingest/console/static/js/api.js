// Talking to Polku's read and analytics APIs: the read token (if this Polku has one) is kept
// in sessionStorage and sent as a bearer token; a refusal asks for it again.

const TOKEN_KEY = "polku.readToken";

export class SignInNeeded extends Error {}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }

  /** The server has no such endpoint at all (not: no such journey or contact). */
  get unrouted() {
    return this.status === 404 && this.body?.code === "not_found" && this.body?.field === "path";
  }
}

export class Unreachable extends Error {}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** GET `path` with `params` (empty ones left out) and return the JSON answer. */
export async function get(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  const headers = {accept: "application/json"};
  const bearer = token();
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  let answer;
  try {
    answer = await fetch(url, {headers, cache: "no-store"});
  } catch (exc) {
    throw new Unreachable(String(exc));
  }
  if (answer.status === 401) throw new SignInNeeded();
  const body = await answer.json().catch(() => null);
  if (!answer.ok) throw new ApiError(answer.status, message(answer, body), body);
  return body;
}

// FastAPI says {"detail": "..."} or {"detail": [{loc, msg}]}; Polku's own errors {"message"}.
function message(answer, body) {
  if (typeof body?.detail === "string") return body.detail;
  if (Array.isArray(body?.detail)) {
    return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return body?.message || `${answer.status} ${answer.statusText}`;
}

/** Whether the read API accepts `candidate` (or no token, if `candidate` is empty). */
export async function tokenWorks(candidate) {
  const headers = candidate ? {authorization: `Bearer ${candidate}`} : {};
  const answer = await fetch(new URL("/v1/journeys", location.origin), {headers, cache: "no-store"});
  return answer.status !== 401;
}
