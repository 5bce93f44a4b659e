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
  return h("pre", { class: "wb-pre" + (cls ? " " + cls : "") }, text === null || text === undefined ? "" : String(text));
}

// A word diff [[op, text], ...] (op "=", "-", "+") as spans of text.
export function diffView(segments) {
  const box = h("div", { class: "wb-diff" });
  for (const [op, text] of segments || []) {
    const cls = op === "+" ? "wb-ins" : op === "-" ? "wb-del" : "wb-same";
    box.append(h(op === "+" ? "ins" : op === "-" ? "del" : "span", { class: cls }, text));
  }
  return box;
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
