// The journeys list: every loaded journey with its stages, and how many contacts are in each
// stage now (refreshed live; the demo traffic of `polku dev --demo` fills it up).
import { analytics, href, journeys, live } from "../app.js";
import { fill, h } from "../dom.js";
import { count } from "../format.js";
import { label, t } from "../i18n.js";

export const NAME = "journeys";

export async function render(root, _args, {failed}) {
  const all = await journeys();
  fill(root, h("h1", {}, t("journeys.title")));
  if (!all.length) {
    root.append(h("p", {class: "notice"}, t("journeys.none")));
    return null;
  }
  const counters = new Map(); // journey id -> {stage id -> element}
  const notice = h("p", {class: "notice", hidden: true}, t("error.analytics"));
  const explain = h("p", {class: "muted", id: "counts-explained", hidden: true}, t("journeys.counts"));
  root.append(explain);
  for (const journey of all) {
    const cells = {};
    counters.set(journey.id, cells);
    root.append(h("section", {class: "card journey", dataset: {journey: journey.id}},
      h("h2", {}, h("a", {href: href(["journeys", journey.id])}, label(journey.labels, journey.id))),
      h("p", {class: "muted"}, journey.id, " · ", t("journeys.version", {version: journey.version})),
      h("ol", {class: "stages"}, journey.stages.map((stage) => {
        cells[stage.id] = h("span", {class: "count", dataset: {metric: "still_in"}});
        return h("li", {dataset: {stage: stage.id}},
          h("a", {href: href(["journeys", journey.id, "stages", stage.id])},
            label(stage.labels, stage.id)), " ", cells[stage.id]);
      }))));
  }
  root.append(notice);

  const refresh = async () => {
    for (const journey of all) {
      const flows = await analytics(journey.id, "flows");
      notice.hidden = flows !== null;
      explain.hidden = flows === null;
      if (flows === null) return;
      const cells = counters.get(journey.id);
      for (const node of flows.nodes) {
        if (cells[node.stage]) fill(cells[node.stage], count(node.still_in));
      }
    }
  };
  await refresh();
  return live(refresh, failed);
}
