// The proof-of-work widget (ALTCHA, served by the site) with its worker served from the site
// too: the strict Content-Security-Policy allows no inline or blob: workers.
import "../vendor/altcha/altcha.min.js";

const widget = document.querySelector("altcha-widget[data-worker]");
if (widget) {
  const workerUrl = widget.dataset.worker;
  globalThis.$altcha.algorithms.set("PBKDF2/SHA-256", () => new Worker(workerUrl));
}
