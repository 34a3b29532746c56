// Draws the figures of a page's json_script element into the matching plot containers.
// A file, not an inline script: the Content-Security-Policy allows scripts from the site only.
document.addEventListener("DOMContentLoaded", () => {
  if (typeof Plotly === "undefined") return;
  const source = document.getElementById("transparency-figures");
  if (!source) return;
  const figures = JSON.parse(source.textContent);
  for (const [name, figure] of Object.entries(figures)) {
    const target = document.getElementById(`plot-${name}`);
    if (target) Plotly.newPlot(target, figure.data, themed(figure.layout), {responsive: true, displaylogo: false});
  }
});

// The site's dark-mode colours, when arenasite/plot_theme.js is loaded.
function themed(layout) {
  return window.arenasitePlotLayout ? window.arenasitePlotLayout(layout) : layout;
}
