// Curves view: plotly charts built in Python (workbench/records/charts.py) -- scores per step with every
// proposal's outcome, and cost (or tokens) per step per role -- plus the run's usage totals.
// plotly.js comes from the kernel's installed plotly package, once per page: the first curves view
// asks its kernel for it; every other view on the page waits for the same load. Nothing is fetched
// from the network.
import { h, clear, watch, coalesce, fmtInt, fmtCost, named } from "./util.js";

const LOADER = "__workbenchPlotly"; // window[LOADER]: the page's one load of plotly.js (a Promise)
const LOAD_TIMEOUT_MS = 60000;
const NARROW_PX = 560;
const INK = "#111827"; // charts.py INK (text and lines for a light page): drawn in the theme's text colour
const CONFIG = { responsive: true, displaylogo: false, scrollZoom: false,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"] };

// Run the bytes of plotly.min.js as a classic script (a blob: URL, like anywidget's own modules).
// Older plotly.js bundles register with an AMD loader when the page has one (classic notebook
// front ends load require.js) instead of setting window.Plotly: hide it while the script runs.
function runScript(bytes) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(new Blob([bytes], { type: "text/javascript" }));
    const tag = document.createElement("script");
    const amd = window.define;
    const restore = () => {
      URL.revokeObjectURL(url);
      if (amd !== undefined) window.define = amd;
    };
    if (amd !== undefined) window.define = undefined;
    tag.src = url;
    tag.dataset.workbench = "plotly";
    tag.onload = () => {
      restore();
      window.Plotly ? resolve(window.Plotly) : reject(new Error("plotly.js ran but defined no Plotly"));
    };
    tag.onerror = () => {
      restore();
      reject(new Error("plotly.js could not be run"));
    };
    document.head.append(tag);
  });
}

function loadPlotly(model) {
  if (window.Plotly && window.Plotly.react) return Promise.resolve(window.Plotly);
  if (window[LOADER]) return window[LOADER];
  const load = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the kernel did not send plotly.js")), LOAD_TIMEOUT_MS);
    const onMsg = (msg, buffers) => {
      if (!msg || msg.type !== "plotly_js") return;
      model.off("msg:custom", onMsg);
      clearTimeout(timer);
      const data = buffers && buffers.length ? buffers[0] : msg.source;
      if (!data) return reject(new Error("the kernel sent no plotly.js"));
      runScript(data).then(resolve, reject);
    };
    model.on("msg:custom", onMsg);
    model.send({ type: "plotly_js" });
  });
  window[LOADER] = load.catch((err) => {
    window[LOADER] = null; // the next view may ask again
    throw err;
  });
  return window[LOADER];
}

// a name as a CSS identifier, one to one: every character but a letter or digit becomes _<code>_
function cssSafe(name) {
  return "t" + String(name === undefined ? "" : name).replace(/[^A-Za-z0-9]/g, (c) => "_" + c.charCodeAt(0) + "_");
}

function render({ model, el }) {
  el.classList.add("wb-view", "wb-curves-view");
  const head = h("div", { class: "wb-head" }, h("span", { class: "wb-title" }, "Curves"),
    h("span", { class: "wb-caption" }, "scores per step · each proposal · cost per step"));
  const status = h("div", { class: "wb-note wb-chart-status" }, "loading the charts…");
  const scoreBox = h("div", { class: "wb-chart wb-chart-score", role: "img", "aria-label": "scores per step" });
  const usageText = h("div", { class: "wb-usage" });
  const costBox = h("div", { class: "wb-chart wb-chart-cost", role: "img", "aria-label": "cost per step per role" });
  // a run with a parent or branches: every run of the tree on one chart (drawn only then)
  const familyHead = h("h4", { class: "wb-h wb-family-head" }, "This run's family: parent and branches");
  const familyBox = h("div", { class: "wb-chart wb-chart-family", role: "img", "aria-label": "the best validation score of each run of the family" });
  familyHead.hidden = familyBox.hidden = true;
  el.append(h("div", { class: "wb-card" }, head, status, scoreBox, usageText, costBox, familyHead, familyBox));

  let Plotly = null;
  let alive = true;

  let narrow = null; // drawn for a narrow card: the legend wraps onto more rows, so the chart grows

  function drawCharts() {
    if (!Plotly || !alive) return;
    const figures = model.get("figures") || {};
    narrow = el.clientWidth < NARROW_PX;
    const ink = getComputedStyle(el).color; // the theme's text colour: light in a dark theme
    familyHead.hidden = familyBox.hidden = !figures.family;
    if (!figures.family && familyBox.data) Plotly.purge(familyBox);
    for (const [box, key] of [[scoreBox, "score"], [costBox, "cost"], [familyBox, "family"]]) {
      const fig = figures[key];
      if (!fig) continue;
      // uirevision: a hidden series or a zoom survives the next push; uid: traces are matched by name (made
      // safe for the CSS selectors plotly builds from it: a removed "test score (held out)" broke the chart)
      const layout = Object.assign({}, fig.layout || {}, { uirevision: key,
        font: Object.assign({}, (fig.layout || {}).font, { color: ink }) });
      if (narrow && layout.height) layout.height += key === "score" ? 120 : 40;
      const data = (fig.data || []).map((t) => Object.assign({ uid: cssSafe(t.name) }, t,
        t.line && t.line.color === INK ? { line: Object.assign({}, t.line, { color: ink }) } : {},
        t.marker && t.marker.color === INK ? { marker: Object.assign({}, t.marker, { color: ink }) } : {}));
      Plotly.react(box, data, layout, CONFIG);
    }
  }

  function drawUsage() {
    const totals = model.get("totals") || {};
    clear(usageText);
    usageText.append(
      h("span", { class: "wb-stat" }, "calls ", h("b", {}, fmtInt(totals.calls || 0))),
      h("span", { class: "wb-stat" }, "tokens ", h("b", {}, fmtInt(totals.tokens || 0))),
      h("span", { class: "wb-stat", title: totals.cost === null || totals.cost === undefined ? "pass prices={role: (usd_per_1M_prompt, usd_per_1M_completion)} to Workbench for an estimate" : "estimated from the token counts" },
        "est. cost ", h("b", {}, totals.cost === null || totals.cost === undefined ? "n/a" : fmtCost(totals.cost))));
    for (const [role, u] of Object.entries(totals.by_role || {})) {
      usageText.append(h("span", { class: "wb-stat wb-role" }, named(role), ": " + fmtInt(u.calls) + " calls, " +
        fmtInt(u.tokens || 0) + " tokens" + (u.cache_hits ? ", " + fmtInt(u.cache_hits) + " cached" : "")));
    }
  }

  // a notebook panel can change width without a window resize: follow the card's own size
  const resize = coalesce(() => {
    if (!Plotly || !alive) return;
    if ((el.clientWidth < NARROW_PX) !== narrow) return drawCharts();
    for (const box of [scoreBox, costBox, familyBox]) if (box.data) Plotly.Plots.resize(box);
  });
  const observer = typeof ResizeObserver === "function" ? new ResizeObserver(resize) : null;
  if (observer) observer.observe(el);

  loadPlotly(model).then((P) => {
    Plotly = P;
    status.remove();
    drawCharts();
  }, (err) => {
    status.textContent = "The charts could not be drawn: " + String(err && err.message ? err.message : err);
    status.classList.add("wb-error");
  });

  const redrawCharts = coalesce(drawCharts);
  drawUsage();
  const c1 = watch(model, ["figures"], redrawCharts);
  const c2 = watch(model, ["totals"], drawUsage);
  return () => {
    alive = false;
    c1();
    c2();
    if (observer) observer.disconnect();
    if (Plotly) for (const box of [scoreBox, costBox, familyBox]) Plotly.purge(box);
  };
}

export default { render };
