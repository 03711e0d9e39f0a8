// One journey: its map (a Sankey of the moves between stages), its funnel and the time spent
// in each stage, over a period; the numbers come from /v1/analytics and refresh live.
import { analytics, href, journey as findJourney, live } from "../app.js";
import { barsOption, chart } from "../charts.js";
import { add, fill, h, table } from "../dom.js";
import { sankeyOf, sankeyOption } from "../flows.js";
import { count, day, duration, share } from "../format.js";
import { label, t } from "../i18n.js";

export const NAME = "journey";

const VIEWS = ["map", "funnel", "time"];
const PRESETS = [7, 30, 90];
const DAY_MS = 86400000;

export async function render(root, {journey: id, view, query}, {failed}) {
  const journey = await findJourney(id);
  if (!journey) {
    fill(root, h("p", {class: "error"}, t("journey.unknown", {id})));
    return null;
  }
  if (!VIEWS.includes(view)) view = "map";
  const period = periodOf(query);
  const name = (stage) => label(journey.stages.find((s) => s.id === stage)?.labels, stage);
  const body = h("section", {class: "journey-view", dataset: {view}});
  fill(root,
    h("h1", {}, label(journey.labels, journey.id)),
    h("p", {class: "muted"}, journey.id, " · ", t("journeys.version", {version: journey.version})),
    h("nav", {class: "tabs"}, VIEWS.map((v) => h("a", {
      href: href(["journeys", id, v], Object.fromEntries(query)),
      class: v === view ? "active" : null, dataset: {view: v},
    }, t(`journey.${v}`)))),
    periodForm(id, view, query, period),
    body);
  const draw = {map: drawMap, funnel: drawFunnel, time: drawTime}[view];
  const ctx = {journey, id, query, period, name, body};
  const refresh = await draw(ctx);
  if (!refresh) return null;
  const stop = live(refresh, failed);
  return () => {
    stop();
    ctx.chart?.dispose();
  };
}

/** The period of the hash's `from` and `until` (days, both included; default the last 30),
 * and the API's `from`/`to` for it (`to` exclusive, midnight UTC after `until`). */
export function periodOf(query) {
  const today = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS);
  const until = query.get("until") || day(today);
  const from = query.get("from") || day(new Date(Date.parse(until) - 29 * DAY_MS));
  const to = day(new Date(Date.parse(until) + DAY_MS));
  return {from, until, api: {from: `${from}T00:00:00Z`, to: `${to}T00:00:00Z`}};
}

function periodForm(id, view, query, period) {
  const from = h("input", {type: "date", name: "from", value: period.from, required: true});
  const until = h("input", {type: "date", name: "until", value: period.until, required: true});
  const go = (extra) => {
    location.hash = href(["journeys", id, view], {...Object.fromEntries(query), ...extra});
  };
  const preset = (days) => {
    const last = Date.parse(day(new Date()));
    go({from: day(new Date(last - (days - 1) * DAY_MS)), until: day(new Date(last))});
  };
  return h("form", {
    class: "period", id: "period",
    dataset: {apiFrom: period.api.from, apiTo: period.api.to},
    on: {submit: (event) => { event.preventDefault(); go({from: from.value, until: until.value}); }},
  },
  h("label", {}, t("period.from"), " ", from),
  h("label", {}, t("period.to"), " ", until),
  h("button", {type: "submit"}, t("period.apply")),
  PRESETS.map((days) => h("button", {type: "button", class: "plain", dataset: {days},
                                     on: {click: () => preset(days)}}, t("period.days", {n: days}))));
}

function analyticsMissing(body) {
  fill(body, h("p", {class: "notice", id: "no-analytics"}, t("error.analytics")));
  return null;
}

/** Draw again only when the answer changed, so a live page does not flicker. */
function changed(ctx, answer) {
  const text = JSON.stringify(answer);
  if (text === ctx.last) return false;
  ctx.last = text;
  return true;
}

// -- map ---------------------------------------------------------------------------------

async function drawMap(ctx) {
  const {journey, id, period, name, body} = ctx;
  const flows = await analytics(id, "flows", period.api);
  if (flows === null) return analyticsMissing(body);
  const canvas = h("div", {class: "chart sankey", id: "map-chart"});
  const stages = h("div", {id: "map-stages"});
  const back = h("div", {id: "map-backward"});
  fill(body, h("p", {class: "muted"}, t("map.explain")), canvas, stages, back);
  ctx.chart = chart(canvas);
  const order = journey.stages.map((s) => s.id);
  const texts = {
    entered: t("map.entered"),
    back: (stage) => t("map.back", {stage}),
    stillHere: (n) => t("map.stillHere", {n: count(n)}),
  };
  const show = (answer) => {
    if (!changed(ctx, answer)) return;
    const sankey = sankeyOf(answer, order, name, texts);
    canvas.classList.toggle("empty", !sankey.links.length);
    ctx.chart.setOption(sankeyOption(sankey, (p) => tooltip(p, sankey)), {notMerge: true});
    fill(stages, stageTable(ctx, answer));
    fill(back, h("h2", {}, t("map.backward")), sankey.backward.length
      ? table([
          [t("map.from"), (l) => name(l.from)],
          [t("map.to"), (l) => name(l.to)],
          [t("map.count"), (l) => count(l.count), {numeric: true, metric: "count"}],
        ], sankey.backward, {class: "backward", rowData: (l) => ({from: l.from, to: l.to})})
      : h("p", {class: "muted"}, t("map.backward.none")));
    if (!sankey.links.length) stages.prepend(h("p", {class: "muted"}, t("map.empty")));
  };
  show(flows);
  return async () => show(await analytics(id, "flows", periodOf(ctx.query).api));
}

function tooltip(p, sankey) {
  const text = (node) => (sankey.labels[node] ?? node).split("\n")[0];
  if (p.dataType === "edge") return `${text(p.data.source)} → ${text(p.data.target)}: ${count(p.data.value)}`;
  return `${text(p.name)}: ${count(p.value)}`;
}

/** Per stage: moved in, moved on (forward or back), still here; each stage opens its contacts. */
function stageTable(ctx, flows) {
  const {journey, id, period, name} = ctx;
  const sum = (pick) => (stage) => flows.links.filter((l) => pick(l) === stage)
    .reduce((n, l) => n + l.count, 0);
  const movedIn = sum((l) => l.to);
  const movedOut = sum((l) => l.from);
  const still = new Map(flows.nodes.map((n) => [n.stage, n.still_in]));
  return table([
    [t("map.stage"), (s) => h("a", {href: href(["journeys", id, "stages", s.id],
                                               {from: period.from, until: period.until})},
                              name(s.id))],
    [t("map.in"), (s) => count(movedIn(s.id)), {numeric: true, metric: "in"}],
    [t("map.out"), (s) => count(movedOut(s.id)), {numeric: true, metric: "out"}],
    [t("map.still"), (s) => count(still.get(s.id) ?? 0), {numeric: true, metric: "still_in"}],
  ], journey.stages, {class: "stages-table", rowData: (s) => ({stage: s.id})});
}

// -- funnel ------------------------------------------------------------------------------

async function drawFunnel(ctx) {
  const {id, query, period, body} = ctx;
  const mode = query.get("mode") === "any_order" ? "any_order" : "in_order";
  const split = ["cohort_week", "channel"].includes(query.get("split")) ? query.get("split") : "none";
  const params = {...period.api, mode, split};
  const funnel = await analytics(id, "funnel", params);
  if (funnel === null) return analyticsMissing(body);
  const go = (extra) => {
    location.hash = href(["journeys", id, "funnel"], {...Object.fromEntries(query), ...extra});
  };
  const canvas = h("div", {class: "chart", id: "funnel-chart"});
  const tables = h("div", {id: "funnel-tables"});
  fill(body,
    h("form", {class: "options", id: "funnel-options"},
      h("fieldset", {}, h("legend", {}, t("funnel.mode")),
        ["in_order", "any_order"].map((m) => h("label", {},
          h("input", {type: "radio", name: "mode", value: m, checked: m === mode,
                      on: {change: () => go({mode: m})}}),
          " ", t(m === "in_order" ? "funnel.inOrder" : "funnel.anyOrder")))),
      h("label", {}, t("funnel.split"), " ",
        h("select", {name: "split", on: {change: (e) => go({split: e.target.value})}},
          ["none", "cohort_week", "channel"].map((s) => h("option", {value: s, selected: s === split},
                                                         t(`funnel.split.${s}`)))))),
    h("p", {class: "muted"}, t(`funnel.explain.${mode}`)),
    canvas, tables);
  ctx.chart = chart(canvas);
  const show = (answer) => {
    if (!changed(ctx, answer)) return;
    const names = answer.stages.map((s) => label(s.labels, s.stage));
    const series = split === "none"
      ? [{name: t("funnel.reached"), values: answer.stages.map((s) => s.reached)}]
      : answer.splits.map((part) => ({name: part.key, values: part.stages.map((s) => s.reached)}));
    ctx.chart.setOption(barsOption(names, series), {notMerge: true});
    fill(tables, funnelTable(answer.stages, "all"));
    if (split !== "none") {
      add(tables, answer.splits.length
        ? answer.splits.map((part) => h("details", {class: "split", dataset: {key: part.key}},
            h("summary", {}, part.key), funnelTable(part.stages, part.key)))
        : h("p", {class: "muted"}, t("funnel.noSplits")));
    }
  };
  show(funnel);
  return async () => show(await analytics(id, "funnel", {...periodOf(query).api, mode, split}));
}

function funnelTable(stages, key) {
  return table([
    [t("map.stage"), (s) => label(s.labels, s.stage)],
    [t("funnel.reached"), (s) => count(s.reached), {numeric: true, metric: "reached"}],
    [t("funnel.toNext"), (s) => share(s.conversion_to_next), {numeric: true, metric: "conversion_to_next"}],
    [t("funnel.fromFirst"), (s) => share(s.conversion_from_first), {numeric: true, metric: "conversion_from_first"}],
    [t("funnel.dropped"), (s) => count(s.dropped), {numeric: true, metric: "dropped"}],
    [t("funnel.median"), (s) => duration(s.time_in_stage.median_s), {numeric: true, metric: "median_s"}],
    [t("funnel.p90"), (s) => duration(s.time_in_stage.p90_s), {numeric: true, metric: "p90_s"}],
  ], stages, {class: "funnel-table", rowData: (s) => ({stage: s.stage, split: key})});
}

// -- time in stage -----------------------------------------------------------------------

async function drawTime(ctx) {
  const {id, period, body} = ctx;
  const params = {...period.api, mode: "any_order", split: "none"};
  const funnel = await analytics(id, "funnel", params);
  if (funnel === null) return analyticsMissing(body);
  const canvas = h("div", {class: "chart", id: "time-chart"});
  const tables = h("div", {id: "time-table"});
  fill(body, h("p", {class: "muted"}, t("time.explain")), canvas, tables);
  ctx.chart = chart(canvas);
  const hours = (s) => (s === null ? null : Math.round((s / 3600) * 10) / 10);
  const show = (answer) => {
    if (!changed(ctx, answer)) return;
    const names = answer.stages.map((s) => label(s.labels, s.stage));
    ctx.chart.setOption(barsOption(names, [
      {name: t("funnel.median"), values: answer.stages.map((s) => hours(s.time_in_stage.median_s))},
      {name: t("funnel.p90"), values: answer.stages.map((s) => hours(s.time_in_stage.p90_s))},
    ], (v) => (v === null || v === undefined ? t("none") : duration(v * 3600))), {notMerge: true});
    // Over 50,000 contacts the API reads a sample of the stays; say so rather than hide it.
    const sample = Math.min(1, ...answer.stages.map((s) => s.time_in_stage.sample ?? 1));
    const sampled = sample < 1
      ? h("p", {class: "muted", id: "sampled"}, t("time.sample", {share: share(sample)}))
      : null;
    fill(tables, sampled, table([
      [t("map.stage"), (s) => label(s.labels, s.stage)],
      [t("funnel.median"), (s) => duration(s.time_in_stage.median_s), {numeric: true, metric: "median_s"}],
      [t("funnel.p90"), (s) => duration(s.time_in_stage.p90_s), {numeric: true, metric: "p90_s"}],
      [t("funnel.visits"), (s) => count(s.time_in_stage.visits), {numeric: true, metric: "visits"}],
    ], answer.stages, {class: "time-table", rowData: (s) => ({stage: s.stage})}));
  };
  show(funnel);
  return async () => show(await analytics(id, "funnel", {...periodOf(ctx.query).api, mode: "any_order", split: "none"}));
}
