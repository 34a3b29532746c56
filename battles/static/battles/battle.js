// The battle page: answers rendered as Markdown, grown in place as they stream in.
//
// While the models answer, the page follows GET /api/v1/battles/{id}/stream/ (server-sent
// events: {"side": "a"|"b", "text": ...} pieces of the latest turn, then `end` with the battle).
// Each piece is appended to its answer's source, the source rendered to sanitised HTML, and the
// answer's DOM brought to that HTML by changing as little as possible (a growing text is
// appended to), so a text selection survives while text arrives. At the end the controls
// (votes, follow-up, stop, regenerate) are taken from a fresh copy of the page, so the server's
// template stays the one description of them. Without JavaScript the page reloads itself
// until the answers are in (a <noscript> refresh in battle.html) and shows the plain text.
//
// Nothing a model writes can run or load anything: markdown-it is told to treat HTML as text,
// DOMPurify keeps only the formatting tags below (no images, no styles, no event handlers,
// links to http, https and mailto only, opened with rel="nofollow noopener noreferrer"), and
// the site's CSP allows no inline script and no image from elsewhere anyway.
(() => {
  "use strict";

  const battle = document.getElementById("battle");
  if (!battle) return;
  const progress = document.getElementById("battle-progress");
  const SIDES = ["a", "b"];
  const NAMES = { a: "Model A", b: "Model B" };

  // --- Markdown, sanitised ---------------------------------------------------------------

  const { markdownit, DOMPurify, hljs } = window;
  const canRender = Boolean(markdownit && DOMPurify && DOMPurify.isSupported);
  let md = null;
  const PURIFY = {
    ALLOWED_TAGS: [
      "a", "p", "br", "hr", "h3", "h4", "h5", "h6", "strong", "em", "s", "del", "code", "pre",
      "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "span", "sup", "sub",
    ],
    ALLOWED_ATTR: ["href", "title", "class", "start"],
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  };

  if (canRender) {
    md = markdownit({
      html: false, // HTML in an answer is shown as text
      linkify: true,
      langPrefix: "hljs language-",
      highlight(code, lang) {
        if (!hljs || !lang || !hljs.getLanguage(lang)) return ""; // markdown-it escapes it
        try {
          return hljs.highlight(code, { language: lang, ignoreIllegals: true }).value;
        } catch {
          return "";
        }
      },
    });
    // An answer's headings sit under the answer's own h2: its largest becomes h3, the next h4...
    const level = (token, env) => Math.min(6, Number(token.tag.slice(1)) + (env.headingShift || 0));
    md.renderer.rules.heading_open = (tokens, i, options, env) => `<h${level(tokens[i], env)}>`;
    md.renderer.rules.heading_close = (tokens, i, options, env) => `</h${level(tokens[i], env)}>`;
    // No image is loaded from an answer: it becomes a link to the picture, named by its text.
    md.renderer.rules.image = (tokens, i) => {
      const token = tokens[i];
      const src = token.attrGet("src") || "";
      const alt = md.renderer.renderInlineAsText(token.children || [], md.options, {});
      return `<a href="${md.utils.escapeHtml(src)}">${md.utils.escapeHtml(`Image: ${alt || src}`)}</a>`;
    };
    DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.hasAttribute("class")) {
        const kept = [...node.classList].filter((name) => /^(hljs|language-)[\w+#.-]*$/.test(name));
        if (kept.length) node.setAttribute("class", kept.join(" "));
        else node.removeAttribute("class");
      }
      if (node.tagName === "A") {
        node.setAttribute("rel", "nofollow noopener noreferrer");
        if (node.hasAttribute("href")) node.setAttribute("target", "_blank");
      }
    });
  }

  function copyButton(what, label) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.dataset.copy = what;
    button.textContent = label;
    return button;
  }

  // The answer's source as a DOM fragment: sanitised HTML, or the plain text without the libraries.
  function rendered(source) {
    if (!canRender) {
      const fragment = document.createDocumentFragment();
      fragment.append(document.createTextNode(source));
      return fragment;
    }
    const env = {};
    const tokens = md.parse(source, env);
    const levels = tokens.filter((token) => token.type === "heading_open").map((token) => Number(token.tag.slice(1)));
    env.headingShift = levels.length ? 3 - Math.min(...levels) : 0;
    const fragment = DOMPurify.sanitize(md.renderer.render(tokens, md.options, env), PURIFY);
    for (const pre of fragment.querySelectorAll("pre")) {
      const code = pre.querySelector("code");
      if (code) code.classList.add("hljs"); // the theme's colours, with a language or without
      const box = document.createElement("div");
      box.className = "code-block";
      const bar = document.createElement("div");
      bar.className = "code-bar";
      const language = document.createElement("span");
      const named = [...(code?.classList || [])].find((name) => name.startsWith("language-"));
      language.textContent = named ? named.slice("language-".length) : "code";
      bar.append(language, copyButton("code", "Copy code"));
      pre.tabIndex = 0; // a box that scrolls sideways can be scrolled from the keyboard
      pre.replaceWith(box);
      box.append(bar, pre);
    }
    for (const table of fragment.querySelectorAll("table")) {
      const box = document.createElement("div");
      box.className = "table-scroll";
      box.tabIndex = 0;
      table.replaceWith(box);
      box.append(table);
    }
    return fragment;
  }

  // Bring `target`'s children to `source`'s, keeping every node that can stay: a text that
  // grew is appended to, so a selection in it (or before it) is left where it was.
  function morph(target, source) {
    const before = [...target.childNodes];
    const after = [...source.childNodes];
    after.forEach((node, i) => {
      const old = before[i];
      if (!old) {
        target.append(node);
      } else if (old.nodeType === Node.TEXT_NODE && node.nodeType === Node.TEXT_NODE) {
        if (old.data === node.data) return;
        if (node.data.startsWith(old.data)) old.appendData(node.data.slice(old.data.length));
        else old.data = node.data;
      } else if (old.nodeType === Node.ELEMENT_NODE && node.nodeType === Node.ELEMENT_NODE && old.tagName === node.tagName) {
        for (const { name } of [...old.attributes]) if (!node.hasAttribute(name)) old.removeAttribute(name);
        for (const { name, value } of [...node.attributes]) if (old.getAttribute(name) !== value) old.setAttribute(name, value);
        morph(old, node);
      } else {
        target.replaceChild(node, old);
      }
    });
    for (const old of before.slice(after.length)) old.remove();
  }

  // --- The answers on the page ----------------------------------------------------------

  const sources = new WeakMap(); // an answer's .text element -> its Markdown source

  function show(text, source) {
    sources.set(text, source);
    text.dataset.source = source; // what "Copy answer" copies, and what the browser tests read
    morph(text, rendered(source));
  }

  for (const answer of battle.querySelectorAll(".answer")) {
    const text = answer.querySelector(".text");
    const source = text.textContent;
    text.textContent = "";
    if (canRender) text.classList.add("md");
    show(text, source);
    answer.querySelector(".answer-head").append(copyButton("answer", "Copy answer"));
  }

  function announce(message) {
    if (progress && progress.textContent !== message) progress.textContent = message;
  }

  // --- Copying ----------------------------------------------------------------------------

  async function copy(value) {
    try {
      await navigator.clipboard.writeText(value);
      return true;
    } catch {
      // Without the asynchronous clipboard (an insecure origin): a hidden box and the copy command.
      const box = document.createElement("textarea");
      box.value = value;
      box.setAttribute("readonly", "");
      box.className = "visually-hidden";
      document.body.append(box);
      box.select();
      const done = document.execCommand("copy");
      box.remove();
      return done;
    }
  }

  battle.addEventListener("click", async (event) => {
    const button = event.target.closest("button.copy");
    if (!button) return;
    const value =
      button.dataset.copy === "code"
        ? button.closest(".code-block").querySelector("pre").textContent
        : sources.get(button.closest(".answer").querySelector(".text")) || "";
    const done = await copy(value);
    const label = button.dataset.copy === "code" ? "Copy code" : "Copy answer";
    button.textContent = done ? "Copied" : "Copy failed";
    announce(done ? "Copied to the clipboard." : "The browser did not allow copying.");
    setTimeout(() => {
      button.textContent = label;
    }, 1500);
  });

  // --- The stream -------------------------------------------------------------------------

  const latest = battle.querySelector(".turn[data-latest]");
  if (!latest || battle.dataset.status !== "answering") return;

  const answers = {};
  for (const side of SIDES) {
    const text = latest.querySelector(`.answer[data-side="${side}"] .text`);
    // What the page was served with (a checkpoint of the answer) and what the stream has sent:
    // both are beginnings of the same answer, and the longer one is shown.
    answers[side] = { text, served: sources.get(text) || "", received: "", announced: false };
  }
  let frame = 0;

  function draw() {
    frame = 0;
    for (const side of SIDES) {
      const { text, served, received } = answers[side];
      const source = received.length >= served.length ? received : served;
      if (source !== sources.get(text)) show(text, source);
    }
  }

  function onText(event) {
    const { side, text } = JSON.parse(event.data);
    const answer = answers[side];
    if (!answer) return;
    answer.received += text;
    if (!answer.announced && text.trim()) {
      answer.announced = true;
      const other = answers[side === "a" ? "b" : "a"];
      announce(other.announced ? "Both models are answering…" : `${NAMES[side]} is answering…`);
    }
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function lastAnswer(conversation) {
    const message = conversation && conversation[conversation.length - 1];
    return message && message.role === "assistant" ? message.content : null;
  }

  async function onEnd(data) {
    if (frame) cancelAnimationFrame(frame);
    frame = 0;
    const finals = { a: lastAnswer(data.conversation_a), b: lastAnswer(data.conversation_b) };
    for (const side of SIDES) {
      const { text } = answers[side];
      if (finals[side] !== null) answers[side].received = finals[side];
      text.classList.remove("typing");
      text.closest(".answer").classList.toggle("failed", data[`answer_${side}`] === "failed");
    }
    draw();
    battle.dataset.status = data.status;
    await refreshControls();
    if (data.status === "failed") {
      announce(data.error ? `The battle failed: ${data.error}` : "A model could not answer. This battle is over.");
    } else if (data.complete) {
      const stopped = data.answer_a === "stopped" || data.answer_b === "stopped";
      announce(stopped ? "The answers were stopped: vote on them, or regenerate them." : "Both answers are in: vote for the better one.");
      const vote = battle.querySelector('form.votes button[name="winner"]:not(:disabled)');
      const idle = !document.activeElement || document.activeElement === document.body;
      if (vote && idle) {
        // Keep a reader where they are reading: with text selected, the page does not scroll.
        const selection = document.getSelection();
        vote.focus({ preventScroll: Boolean(selection && !selection.isCollapsed) });
      }
    }
  }

  async function refreshControls() {
    const controls = battle.querySelector("#battle-controls");
    try {
      const response = await fetch(window.location.pathname, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("battle-controls");
      if (!fresh) throw new Error("no controls on the page");
      controls.replaceWith(document.adoptNode(fresh));
      if (window.arenaPrompts) window.arenaPrompts.revealHints(battle);
    } catch {
      window.location.reload();
    }
  }

  const stream = new EventSource(battle.dataset.stream);
  stream.addEventListener("message", onText);
  stream.addEventListener("end", (event) => {
    stream.close(); // else the browser reconnects and is sent the finished turn again
    onEnd(JSON.parse(event.data));
  });
  stream.addEventListener("error", () => {
    // The browser reconnects by itself (with Last-Event-ID) unless the server refused the
    // stream; then the page shows the state the server has, as it does without JavaScript.
    if (stream.readyState === EventSource.CLOSED) setTimeout(() => window.location.reload(), 2000);
  });

  // Stop: posted in the background, so the answers and a selection in them stay; the stream
  // then ends with the stopped battle. If the request fails the form is sent as a page would.
  battle.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches("form[data-intercept]")) return;
    event.preventDefault();
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    announce("Stopping the answers…");
    try {
      const response = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      if (stream.readyState === EventSource.CLOSED) await refreshControls();
    } catch {
      form.submit();
    }
  });
})();
