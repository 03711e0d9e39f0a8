// Numbers, shares, durations and times as the current language writes them.
import { language, t } from "./i18n.js";

function locale() {
  return language() === "fi" ? "fi-FI" : "en-GB";
}

export function count(n) {
  return n === null || n === undefined ? t("none") : new Intl.NumberFormat(locale()).format(n);
}

/** A share in 0..1 as a percentage with one decimal ("66.7 %"); null is "—". */
export function share(x) {
  if (x === null || x === undefined) return t("none");
  return new Intl.NumberFormat(locale(), {style: "percent", minimumFractionDigits: 1,
                                          maximumFractionDigits: 1}).format(x);
}

/** Seconds as the two largest units: "3 d 4 h", "2 h 5 min", "40 s". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return t("none");
  const units = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
  const parts = [];
  let rest = Math.round(seconds);
  for (const [unit, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0 || (unit === "s" && parts.length === 0)) parts.push(`${n} ${unit}`);
    rest -= n * size;
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

/** An ISO time in the browser's time zone ("2 Dec 2026, 14:05"). */
export function time(iso) {
  if (!iso) return t("none");
  return new Intl.DateTimeFormat(locale(), {dateStyle: "medium", timeStyle: "short"})
    .format(new Date(iso));
}

/** YYYY-MM-DD of a Date in UTC (the API's periods are in UTC). */
export function day(date) {
  return date.toISOString().slice(0, 10);
}
