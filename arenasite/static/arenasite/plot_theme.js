// The site's colours for plotly figures: in dark mode, a figure drawn for a white page gets a
// transparent background, the page's text colour and the page's line colour for its grids.
// Loaded before a page's plots script, which passes each figure's layout through it.
"use strict";
window.arenasitePlotLayout = function (layout) {
  if (!window.matchMedia || !window.matchMedia("(prefers-color-scheme: dark)").matches) return layout;
  const style = getComputedStyle(document.documentElement);
  const text = style.getPropertyValue("--fg").trim() || "#e6e8eb";
  const line = style.getPropertyValue("--line").trim() || "#3a414b";
  const themed = Object.assign({}, layout, {
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: Object.assign({}, layout.font, { color: text }),
  });
  const axes = Object.keys(layout).filter((key) => /^[xy]axis\d*$/.test(key));
  for (const key of axes.length ? axes : ["xaxis", "yaxis"]) {
    themed[key] = Object.assign({}, layout[key], { gridcolor: line, linecolor: line, zerolinecolor: line });
  }
  return themed;
};
