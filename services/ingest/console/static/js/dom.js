// Building the page's elements. Text always goes in as text (never as HTML): contact ids,
// traits and reasons come from outside and must not be able to run anything here.

/**
 * h("a", {href: "#/x", class: "stage", dataset: {stage: "s"}, on: {click: f}}, "text", child)
 * Children may be strings, numbers, elements, null/undefined/false (skipped) or arrays of them.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "on") for (const [event, f] of Object.entries(value)) el.addEventListener(event, f);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Add `children` (as `h` takes them) at the end of `el`. */
export function add(el, ...children) {
  append(el, children);
  return el;
}

/** Replace everything in `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table: `columns` are [header, cell(row) -> content, {numeric}] */
export function table(columns, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, columns.map(([header, , opts]) =>
      h("th", {class: opts?.numeric ? "num" : null}, header)))),
    h("tbody", {}, rows.map((row) => h("tr", rowAttrs(row, attrs),
      columns.map(([, cell, opts]) => h("td", cellAttrs(row, opts), cell(row)))))));
}

function rowAttrs(row, attrs) {
  return attrs.rowData ? {dataset: attrs.rowData(row)} : {};
}

function cellAttrs(row, opts) {
  if (!opts) return {};
  return {class: opts.numeric ? "num" : null, dataset: opts.metric ? {metric: opts.metric} : null};
}
