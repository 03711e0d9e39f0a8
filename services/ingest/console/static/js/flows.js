// The journey map as a Sankey diagram. ECharts' Sankey refuses cycles, and journeys have them
// (contacts move back: at risk -> activated), so the diagram is made acyclic here:
//
// - columns follow the journey's stage order: "entered the journey" first, then each stage;
// - a move to a later stage is a link between the two stage nodes;
// - every other move (back to an earlier stage, or to the same stage) ends in a return node
//   "↩ <stage it went back to>" in the column right after the stage it left, drawn in grey
//   with a dashed outline. The move still counts in its stage's outflow, so nothing is lost,
//   and the table under the map lists every move back with its count.
//
// Node ids are "entry", "stage:<id>" and "back:<from>:<to>"; names shown are in `nodeLabels`.

export const ENTRY = "entry";

export function stageNode(stage) {
  return `stage:${stage}`;
}

function backNode(from, to) {
  return `back:${from ?? ""}:${to}`;
}

/**
 * @param flows the flows endpoint's answer: {nodes: [{stage, labels, still_in}],
 *              links: [{from, to, count, backward}]}
 * @param order the journey's stage ids, in order
 * @param name (stage id) -> its label
 * @param texts {entered, back(stageLabel), stillHere(n)} in the page's language
 * @returns {nodes, links, labels, backward} for ECharts (nodes with fixed depths) and the table
 */
export function sankeyOf(flows, order, name, texts) {
  const depth = new Map(order.map((stage, i) => [stage, i + 1]));
  const stillIn = new Map(flows.nodes.map((node) => [node.stage, node.still_in]));
  const nodes = new Map();
  const labels = {};
  const links = [];
  const backward = [];
  const addNode = (id, d, text, style = {}) => {
    if (!nodes.has(id)) nodes.set(id, {name: id, depth: d, ...style});
    labels[id] = text;
  };
  const stage = (id) => {
    // A stage the journey no longer has (a retired one) goes after the others.
    if (!depth.has(id)) depth.set(id, depth.size + 1);
    const here = stillIn.get(id);
    addNode(stageNode(id), depth.get(id),
            here ? `${name(id)}\n${texts.stillHere(here)}` : name(id));
    return stageNode(id);
  };
  for (const link of flows.links) {
    if (!link.count) continue;
    let source = ENTRY;
    let fromDepth = 0;
    if (link.from === null) addNode(ENTRY, 0, texts.entered);
    else {
      source = stage(link.from);
      fromDepth = depth.get(link.from);
    }
    if (!link.backward && (depth.get(link.to) ?? depth.size + 1) > fromDepth) {
      links.push({source, target: stage(link.to), value: link.count});
    } else {
      const id = backNode(link.from, link.to);
      addNode(id, fromDepth + 1, texts.back(name(link.to)),
              {itemStyle: {color: "#b8bec6", borderType: "dashed", borderColor: "#6b7380"}});
      links.push({source, target: id, value: link.count,
                  lineStyle: {color: "#9aa3ad", opacity: 0.35}});
      backward.push(link);
    }
  }

  return {nodes: [...nodes.values()], links, labels, backward};
}

/** The ECharts option drawing `sankey` (from sankeyOf). */
export function sankeyOption(sankey, tooltipOf) {
  return {
    animation: false,
    tooltip: {trigger: "item", formatter: tooltipOf},
    series: [{
      type: "sankey",
      data: sankey.nodes,
      links: sankey.links,
      nodeAlign: "left",
      layoutIterations: 0, // keep the stage order top to bottom as given
      emphasis: {focus: "adjacency"},
      label: {formatter: (p) => sankey.labels[p.name] ?? p.name, lineHeight: 16, fontSize: 12,
              color: "#1d2430", textBorderColor: "#ffffff", textBorderWidth: 3},
      lineStyle: {color: "gradient", curveness: 0.5},
      left: 8, right: 160, top: 16, bottom: 16,
    }],
  };
}
