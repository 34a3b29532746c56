// Prompt boxes (the arena, side by side, a battle's follow-up): Enter sends, Shift+Enter adds a
// line. Without this script Enter adds a line and the Send button sends, as in any form.
(() => {
  "use strict";

  const PROMPTS = 'form textarea[name="prompt"]';

  function revealHints(root) {
    for (const hint of root.querySelectorAll("[data-enter-hint]")) hint.hidden = false;
  }

  document.addEventListener("keydown", (event) => {
    const box = event.target;
    if (event.key !== "Enter" || event.shiftKey || event.altKey || event.isComposing) return;
    if (!(box instanceof HTMLTextAreaElement) || !box.matches(PROMPTS)) return;
    event.preventDefault();
    const form = box.form;
    if (!box.value.trim() || form.dataset.sending) return;
    form.dataset.sending = "1";
    // requestSubmit runs the form's checks and submit handlers, as a click on Send does.
    form.requestSubmit();
    // A check that stopped the submission (an empty or too long prompt) lets the voter try again.
    setTimeout(() => delete form.dataset.sending, 1000);
  });

  revealHints(document);
  // The battle page brings in new controls (with a follow-up box) when the answers are in.
  window.arenaPrompts = { revealHints };
})();
