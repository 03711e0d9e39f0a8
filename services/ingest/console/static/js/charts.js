// ECharts (vendored, loaded by index.html as the global `echarts`) in the console's pages.

/** A chart drawn in `el`, resized with the window; `dispose()` it when the page goes. */
export function chart(el) {
  const drawn = window.echarts.init(el, null, {renderer: "canvas"});
  const resize = () => drawn.resize();
  window.addEventListener("resize", resize);
  const dispose = drawn.dispose.bind(drawn);
  drawn.dispose = () => {
    window.removeEventListener("resize", resize);
    dispose();
  };
  return drawn;
}

/** Bars per stage: one series per entry of `series` ({name, values}), categories = stage names. */
export function barsOption(categories, series, valueFormatter) {
  return {
    animation: false,
    tooltip: {trigger: "axis", valueFormatter},
    legend: series.length > 1 ? {top: 0, type: "scroll"} : undefined,
    grid: {left: 64, right: 24, top: series.length > 1 ? 40 : 24, bottom: 48},
    xAxis: {type: "category", data: categories, axisLabel: {interval: 0, width: 110, overflow: "break"}},
    yAxis: valueFormatter ? {type: "value", axisLabel: {formatter: valueFormatter}} : {type: "value"},
    series: series.map((s) => ({type: "bar", name: s.name, data: s.values,
                                label: series.length === 1 ? {show: true, position: "top",
                                  formatter: (p) => (valueFormatter ? valueFormatter(p.value) : p.value)} : undefined})),
  };
}
