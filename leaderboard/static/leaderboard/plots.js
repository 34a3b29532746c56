// Draws the leaderboard plots from the figures the page carries in a JSON block
// (#leaderboard-figures). A file rather than an inline script: the site's
// Content-Security-Policy allows scripts from its own origin only.
"use strict";
(function () {
  function draw() {
    if (typeof Plotly === "undefined") return;
    const data = document.getElementById("leaderboard-figures");
    if (!data) return;
    const figures = JSON.parse(data.textContent);
    for (const [name, figure] of Object.entries(figures)) {
      const target = document.getElementById(`plot-${name}`);
      if (target) Plotly.newPlot(target, figure.data, themed(figure.layout), {responsive: true, displaylogo: false});
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();

// The site's dark-mode colours, when arenasite/plot_theme.js is loaded.
function themed(layout) {
  return window.arenasitePlotLayout ? window.arenasitePlotLayout(layout) : layout;
}
