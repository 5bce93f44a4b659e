// Shared helpers of the Workbench views. Inlined into each view module by workbench/ui/assets.py.
//
// Safety rule of every view: text that came from an LLM, a dataset or a user is put into the page
// with text nodes / textContent / setAttribute only; nothing here ever assigns innerHTML.

export const SVG_NS = "http://www.w3.org/2000/svg";

// Build an element: h("div", {class: "x", title: "t", onclick: fn}, "text", child, ...).
// String children become text nodes; attributes are set with setAttribute (never parsed as HTML);
// attributes starting with "on" must be functions and become event listeners.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// The same for SVG elements.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

export function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) {
      if (typeof value === "function") el.addEventListener(key.slice(2), value);
      continue; // never set an inline handler from a string
    }
    if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
      continue;
    }
    if (key === "text") {
      el.textContent = String(value);
      continue;
    }
    el.setAttribute(key, value === true ? "" : String(value));
  }
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

// Characters a reader cannot see that change what they read: bidi embeddings and overrides
// (U+202A-202E), isolates (U+2066-2069), the Arabic letter mark (U+061C), zero-width characters and
// direction marks (U+200B-200F), the word joiner (U+2060) and the byte-order mark (U+FEFF).
// workbench/plain_text.py holds the same set for the report and the charts.
const INVISIBLE = /[\u061C\u200B-\u200F\u202A-\u202E\u2060\u2066-\u2069\uFEFF]/g;

function controlMarker(ch) {
  return "\u27E8U+" + ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") + "\u27E9";
}

// A string with every invisible control spelled out as ⟨U+202E⟩: for places that take only a string
// (a title, an <option>).
export function showControls(text) {
  return text === null || text === undefined ? "" : String(text).replace(INVISIBLE, controlMarker);
}

// A value from data, a model or a person, isolated (<bdi>): a right-to-left override inside it cannot
// reorder the text around it.
export function bidi(text, cls) {
  return h("bdi", cls ? { class: cls } : null, text === null || text === undefined ? "" : String(text));
}

// An id, a name, or a line that names them: isolated, and each invisible control shown as a ⟨U+202E⟩
// marker in its own style, so "s6\u202Egnp.exe" is never read as "s6exe.png".
export function named(text, cls) {
  const el = h("bdi", { class: "wb-name" + (cls ? " " + cls : "") });
  appendShown(el, text);
  return el;
}

// Append text to el with its invisible controls as marker spans (the text itself stays text nodes).
function appendShown(el, text) {
  const str = text === null || text === undefined ? "" : String(text);
  let last = 0;
  for (const m of str.matchAll(INVISIBLE)) {
    if (m.index > last) el.append(str.slice(last, m.index));
    el.append(h("span", { class: "wb-ctl", title: "an invisible control character in the text" }, controlMarker(m[0])));
    last = m.index + m[0].length;
  }
  if (last < str.length) el.append(str.slice(last));
  return el;
}

export function fmtScore(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(Number(x))) return "–";
  return String(parseFloat(Number(x).toFixed(digits)));
}

export function fmtInt(x) {
  if (x === null || x === undefined) return "–";
  return Number(x).toLocaleString("en-US");
}

export function fmtCost(x) {
  if (x === null || x === undefined) return "–";
  if (x === 0) return "$0";
  return x < 0.01 ? "$" + x.toFixed(4) : "$" + x.toFixed(2);
}

// A pre block of text (prompts, outputs, gradients): always text, wraps, scrolls when long.
export function pre(text, cls) {
  return h("pre", { class: "wb-pre" + (cls ? " " + cls : "") }, bidi(text));
}

// A word diff [[op, text], ...] (op "=", "-", "+") as spans of text, in one isolate; a person approves
// exactly these characters, so invisible controls in it are shown as markers.
export function diffView(segments) {
  const text = h("bdi", { class: "wb-diff-text" });
  for (const [op, part] of segments || []) {
    const cls = op === "+" ? "wb-ins" : op === "-" ? "wb-del" : "wb-same";
    text.append(appendShown(h(op === "+" ? "ins" : op === "-" ? "del" : "span", { class: cls }), part));
  }
  return h("div", { class: "wb-diff" }, text);
}

// A parameter's name, role, description and why it has no path to the loss (graph panel, review list).
export function parameterHead(q) {
  return [
    h("div", { class: "wb-param-name" }, named(q.name), " ", h("span", { class: "wb-kind" }, named(q.role)),
      q.trainable ? null : h("span", { class: "wb-kind" }, "frozen")),
    q.description ? h("div", { class: "wb-param-desc" }, bidi(q.description)) : null,
    q.disconnected ? h("div", { class: "wb-param-why wb-error" }, named(q.disconnected)) : null,
  ];
}

const BANNED_SVG_TAGS = new Set(["script", "foreignobject", "iframe", "object", "embed", "use", "image",
  "animate", "set", "animatemotion", "animatetransform", "handler", "listener", "style"]);

// Parse Graphviz's SVG as image/svg+xml (no HTML parsing, no script execution) and strip anything
// active: script-like elements, on* attributes, and links. Returns an <svg> element owned by this
// document, or null when the text is empty or not SVG.
export function safeSvg(text) {
  if (!text) return null;
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  const root = doc.documentElement;
  if (!root || root.nodeName.toLowerCase() !== "svg" || doc.getElementsByTagName("parsererror").length) return null;
  const all = [root, ...root.querySelectorAll("*")];
  for (const el of all) {
    if (BANNED_SVG_TAGS.has(el.localName.toLowerCase())) {
      el.remove();
      continue;
    }
    for (const attr of [...el.attributes]) {
      const name = attr.name.toLowerCase();
      const local = (attr.localName || name).toLowerCase();
      if (name.startsWith("on") || local === "href" || name.endsWith(":href") || local === "style" ||
          (attr.value && /^\s*(javascript|data|vbscript):/i.test(attr.value))) {
        el.removeAttributeNode(attr);
      }
    }
  }
  return document.importNode(root, true);
}

// Run fn at most once per animation frame, however often it is requested.
export function coalesce(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}

// Subscribe to trait changes; returns the cleanup function anywidget calls on removal.
export function watch(model, names, fn) {
  const events = names.map((n) => "change:" + n);
  for (const ev of events) model.on(ev, fn);
  return () => {
    for (const ev of events) model.off(ev, fn);
  };
}

export function statusClass(status) {
  return "wb-badge wb-badge-" + String(status || "none").replace(/[^a-z0-9_-]/gi, "-");
}

// ---- what a person teaches (issue 16): a person's words are marked as theirs wherever they show ----

// The badge that marks a person's text (a reason, feedback, a gradient written by a person).
export function personBadge() {
  return h("span", { class: "wb-person-badge", title: "written by a person, not by a model" }, "person");
}

// A gradient summary as segments [[source, text], ...] (the kernel marks the person's texts, source
// "person"): the person's parts get the badge and their own style, the rest is plain text.
export function summaryView(parts, fallback) {
  const box = h("pre", { class: "wb-pre wb-gradsum-text" });
  const segs = parts && parts.length ? parts : [["", fallback || ""]];
  for (const [source, text] of segs) {
    if (source === "person") box.append(h("mark", { class: "wb-person-text" }, personBadge(), " ", bidi(text)));
    else box.append(bidi(text));
  }
  return box;
}

// A person's feedback items [{text, status, label, where, reason}] (a sample's row, a node's call,
// the review's list) in one box: each with the badge, what became of it, and the text as text; where it
// was given only when the place does not say (`showWhere`).
export function personNotes(items, showWhere = true) {
  if (!(items || []).length) return null;
  return h("div", { class: "wb-person-notes" }, items.map((f) => h("div", { class: "wb-person-note", dataset: { status: f.status || "" } },
    personBadge(), " ", h("span", { class: statusClass(f.status) }, f.label || f.status || ""),
    showWhere && f.where ? [" ", h("span", { class: "wb-kind" }, named(f.where))] : null, " ", bidi(f.text, "wb-person-said"),
    f.reason ? h("div", { class: "wb-error" }, named(f.reason)) : null)));
}

// Run fn (which may rebuild part of `box`) and give the focus and the caret back to the text box the
// person was typing in: the same element if fn kept it, else its rebuilt twin (same data-focus-key).
// A live update must never take the keyboard away.
export function keepFocus(box, fn) {
  const active = document.activeElement;
  const inside = active && box.contains(active) && (active.localName === "textarea" || active.localName === "input");
  const start = inside ? active.selectionStart : null;
  const end = inside ? active.selectionEnd : null;
  const key = inside ? active.dataset.focusKey : null;
  fn();
  if (!inside) return;
  const again = active.isConnected ? active : key ? box.querySelector(`[data-focus-key="${CSS.escape(key)}"]`) : null;
  if (again && document.activeElement !== again) {
    again.focus();
    try { again.setSelectionRange(start, end); } catch (e) { /* not a text input */ }
  }
}

let feedbackSeq = 0;

// A small feedback box: a text area and "Send feedback". It follows the target the view gives it
// (`follow(target, label)`) until the person starts typing; from then on it stays on that target until
// the text is sent or cleared, so a live update never moves a person's words to another sample.
// Sends {type: "feedback", request_id, text, sample_id, node, parameter}; the kernel answers with
// {type: "feedback_result", request_id, ok, reason}; a refusal is shown and the text is kept.
export function feedbackBox(model, { placeholder, cls }) {
  const label = h("div", { class: "wb-feedback-label" });
  const area = h("textarea", { class: "wb-feedback-text", rows: "2", placeholder: placeholder || "What is wrong, and what should change?",
    "aria-label": "your feedback" });
  const send = h("button", { type: "button", class: "wb-btn wb-small wb-send-feedback" }, "Send feedback");
  const status = h("div", { class: "wb-feedback-status", role: "status" });
  const el = h("div", { class: "wb-feedback" + (cls ? " " + cls : "") }, label, area,
    h("div", { class: "wb-actions" }, send, status));
  let target = null;
  let targetLabel = "";
  let offered = [null, ""]; // the view's latest target, taken up again once the box is free
  let locked = false;
  let waiting = null; // the request id of the feedback in flight
  const drawLabel = () => {
    clear(label);
    if (!target) label.append(h("span", { class: "wb-note" }, "nothing to give feedback on yet"));
    else append(label, ["Your feedback on ", named(targetLabel), locked ? h("span", { class: "wb-kind" }, "kept while you write") : null]);
    send.disabled = !target || !!waiting;
    area.disabled = !target && !locked;
  };
  const free = () => {
    locked = false;
    [target, targetLabel] = offered;
  };
  area.addEventListener("input", () => {
    if (!waiting) clear(status); // an earlier answer is about an earlier text
    locked = area.value.trim() !== "";
    if (!locked && !waiting) free();
    drawLabel();
  });
  area.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      send.click(); // Ctrl+Enter sends, as in a notebook cell
    }
  });
  send.addEventListener("click", () => {
    const text = area.value;
    if (!target) return;
    if (!text.trim()) {
      status.className = "wb-feedback-status wb-error";
      status.textContent = "write something first";
      return;
    }
    waiting = "fb" + (++feedbackSeq) + "-" + Math.random().toString(36).slice(2, 8);
    status.className = "wb-feedback-status";
    status.textContent = "sending…";
    drawLabel();
    model.send(Object.assign({ type: "feedback", request_id: waiting, text }, target));
  });
  const onMessage = (msg) => {
    if (!msg || msg.type !== "feedback_result" || msg.request_id !== waiting) return;
    waiting = null;
    clear(status);
    if (msg.ok) {
      status.className = "wb-feedback-status wb-ok";
      append(status, ["Sent", msg.where ? [" ", named(msg.where)] : "", ": the next backward or optimizer call reads it."]);
      area.value = "";
      free();
    } else {
      status.className = "wb-feedback-status wb-error";
      append(status, ["Refused: ", named(msg.reason || "the run did not take it")]);
    }
    drawLabel();
  };
  model.on("msg:custom", onMessage);
  drawLabel();
  return {
    el,
    // point the box at a target ({sample_id, node, parameter}, or null), unless the person is writing
    follow(next, text) {
      offered = [next, text || ""];
      if (locked || waiting) return;
      free();
      drawLabel();
    },
    cleanup() { model.off("msg:custom", onMessage); },
  };
}
