// What every page shares: the hash routes, the journeys (read once), and live refreshing.
import { ApiError, get } from "./api.js";

/** The route in `location.hash`: "#/journeys/deals/funnel?mode=any_order" ->
 * {parts: ["journeys", "deals", "funnel"], query: URLSearchParams("mode=any_order")} */
export function currentRoute() {
  const [path, search = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return {parts, query: new URLSearchParams(search)};
}

/** The hash link to `parts` (each escaped) with `query` (empty values left out). */
export function href(parts, query = {}) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== "") search.set(name, value);
  }
  const path = parts.map((p) => encodeURIComponent(p)).join("/");
  return `#/${path}${search.size ? `?${search}` : ""}`;
}

let journeysAnswer = null;

/** The loaded journeys, in the read API's order, each with its stages in order. */
export async function journeys() {
  journeysAnswer ??= get("/v1/journeys").then((body) => body.journeys);
  try {
    return await journeysAnswer;
  } catch (exc) {
    journeysAnswer = null; // ask again next time (after a sign-in, say)
    throw exc;
  }
}

export async function journey(id) {
  return (await journeys()).find((j) => j.id === id) ?? null;
}

export function forgetJourneys() {
  journeysAnswer = null;
}

/** Number of milliseconds between refreshes of a page that shows live numbers. */
export const REFRESH_MS = 5000;

/**
 * Run `refresh` every REFRESH_MS while the tab is visible; returns the function that stops it.
 * A refresh that fails keeps what is shown and tells `failed` (the page decides what to say).
 */
export function live(refresh, failed = () => {}) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await refresh();
      } catch (exc) {
        failed(exc);
      }
    }
    if (!stopped) timer = setTimeout(tick, REFRESH_MS);
  };
  timer = setTimeout(tick, REFRESH_MS);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/**
 * GET /v1/analytics/journeys/{journey}/{what}; null when this Polku has no analytics API (the
 * page then says so instead of failing).
 */
export async function analytics(journeyId, what, params = {}) {
  try {
    return await get(`/v1/analytics/journeys/${encodeURIComponent(journeyId)}/${what}`, params);
  } catch (exc) {
    if (exc instanceof ApiError && exc.unrouted) return null;
    throw exc;
  }
}
