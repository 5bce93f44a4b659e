// Curves view: train / validation score per step with accepted and rejected proposals marked, and
// cumulative calls, tokens and estimated cost. Plain SVG built with createElementNS: no plotting
// library, nothing fetched, one redraw per animation frame at most.
import { h, s, clear, watch, coalesce, fmtScore, fmtInt, fmtCost } from "./util.js";

const W = 640;
const M = { l: 42, r: 46, t: 12, b: 26 };

function ticks(lo, hi, n) {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((k) => k >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

function shortNum(x) {
  if (x >= 1e6) return (x / 1e6).toFixed(1) + "M";
  if (x >= 1e3) return (x / 1e3).toFixed(1) + "k";
  return String(Math.round(x));
}

function render({ model, el }) {
  el.classList.add("wb-view", "wb-curves-view");
  const legend = h("span", { class: "wb-legend" },
    h("span", { class: "wb-legend-item" }, h("span", { class: "wb-swatch wb-line-train" }), "train"),
    h("span", { class: "wb-legend-item" }, h("span", { class: "wb-swatch wb-line-val" }), "validation"),
    h("span", { class: "wb-legend-item" }, h("span", { class: "wb-swatch wb-line-best" }), "best validation"),
    h("span", { class: "wb-legend-item" }, h("span", { class: "wb-mark-accepted" }, "▲"), "kept"),
    h("span", { class: "wb-legend-item" }, h("span", { class: "wb-mark-rejected" }, "✕"), "reverted"));
  const head = h("div", { class: "wb-head" }, h("span", { class: "wb-title" }, "Curves"),
    h("span", { class: "wb-caption" }, "score per step"), h("span", { class: "wb-spacer" }), legend);
  const scoreBox = h("div", { class: "wb-chart" });
  const usageText = h("div", { class: "wb-usage" });
  const usageBox = h("div", { class: "wb-chart" });
  el.append(h("div", { class: "wb-card" }, head, scoreBox, usageText, usageBox));

  function axes(svg, x, y, xs, ys, height, yfmt, side) {
    const g = s("g", { class: "wb-axis" });
    for (const v of ys) {
      g.append(s("line", { x1: M.l, x2: W - M.r, y1: y(v), y2: y(v), class: "wb-grid" }));
      g.append(s("text", { x: side === "right" ? W - M.r + 4 : M.l - 4, y: y(v) + 3, "text-anchor": side === "right" ? "start" : "end" }, yfmt(v)));
    }
    for (const v of xs) g.append(s("text", { x: x(v), y: height - 8, "text-anchor": "middle" }, String(v)));
    svg.append(g);
  }

  function line(points, x, y, key, cls) {
    const pts = points.filter((p) => p[key] !== null && p[key] !== undefined);
    if (!pts.length) return null;
    const g = s("g", { class: cls });
    if (pts.length > 1) g.append(s("polyline", { points: pts.map((p) => x(p.step) + "," + y(p[key])).join(" "), fill: "none" }));
    if (pts.length <= 60) {
      for (const p of pts) g.append(s("circle", { cx: x(p.step), cy: y(p[key]), r: 2.5 }, s("title", {}, key + " " + fmtScore(p[key]) + " at step " + p.step)));
    }
    return g;
  }

  function drawScores() {
    const points = model.get("points") || [];
    const marks = model.get("marks") || [];
    clear(scoreBox);
    const H = 220;
    const steps = points.map((p) => p.step).concat(marks.map((m) => m.step));
    const maxStep = Math.max(1, ...steps);
    const vals = [];
    for (const p of points) for (const k of ["train", "val", "best"]) if (p[k] !== null && p[k] !== undefined) vals.push(p[k]);
    for (const m of marks) if (m.score !== null && m.score !== undefined) vals.push(m.score);
    const yMax = Math.max(1, ...vals);
    const yMin = Math.min(0, ...vals);
    const x = (v) => M.l + ((W - M.l - M.r) * v) / maxStep;
    const y = (v) => H - M.b - ((H - M.t - M.b) * (v - yMin)) / (yMax - yMin || 1);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "wb-plot", role: "img", "aria-label": "score per step" });
    axes(svg, x, y, ticks(0, maxStep, 8).filter((v) => Number.isInteger(v)), ticks(yMin, yMax, 4), H, (v) => fmtScore(v, 2));
    if (!points.length) svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "wb-empty-text" }, "scores appear after the baseline evaluation"));
    for (const [key, cls] of [["best", "wb-line-best"], ["train", "wb-line-train"], ["val", "wb-line-val"]]) {
      const g = line(points, x, y, key, cls);
      if (g) svg.append(g);
    }
    const valAt = new Map(points.map((p) => [p.step, p.val]));
    const mg = s("g", { class: "wb-marks" });
    for (const m of marks) {
      const score = m.score !== null && m.score !== undefined ? m.score : valAt.get(m.step);
      const cy = y(score !== null && score !== undefined ? score : yMin);
      const cx = x(m.step);
      const title = s("title", {}, `${m.proposal_id} · ${m.parameter} · ${m.accepted ? "kept" : "reverted"}` +
        (m.score !== null && m.score !== undefined ? ` · validation ${fmtScore(m.score)}` : "") + (m.reason ? ` · ${m.reason}` : ""));
      const shape = m.accepted
        ? s("path", { d: `M${cx},${cy - 6} L${cx + 5},${cy + 3} L${cx - 5},${cy + 3} Z`, class: "wb-mark-accepted" }, title)
        : s("path", { d: `M${cx - 4},${cy - 4} L${cx + 4},${cy + 4} M${cx + 4},${cy - 4} L${cx - 4},${cy + 4}`, class: "wb-mark-rejected" }, title);
      shape.dataset.proposal = m.proposal_id;
      mg.append(shape);
    }
    svg.append(mg);
    scoreBox.append(svg);
  }

  function drawUsage() {
    const usage = model.get("usage") || [];
    const totals = model.get("totals") || {};
    clear(usageText);
    usageText.append(
      h("span", { class: "wb-stat" }, "calls ", h("b", {}, fmtInt(totals.calls || 0))),
      h("span", { class: "wb-stat" }, "tokens ", h("b", {}, fmtInt(totals.tokens || 0))),
      h("span", { class: "wb-stat", title: totals.cost === null || totals.cost === undefined ? "pass prices={role: (usd_per_1M_prompt, usd_per_1M_completion)} to Workbench for an estimate" : "estimated from the token counts" },
        "est. cost ", h("b", {}, totals.cost === null || totals.cost === undefined ? "n/a" : fmtCost(totals.cost))));
    for (const [role, u] of Object.entries(totals.by_role || {})) {
      usageText.append(h("span", { class: "wb-stat wb-role" }, role + ": " + fmtInt(u.calls) + " calls, " +
        fmtInt((u.prompt_tokens || 0) + (u.completion_tokens || 0)) + " tokens" + (u.cache_hits ? ", " + fmtInt(u.cache_hits) + " cached" : "")));
    }
    clear(usageBox);
    if (usage.length < 1) return;
    const H = 110;
    const maxStep = Math.max(1, ...usage.map((u) => u.step));
    const maxTok = Math.max(1, ...usage.map((u) => u.tokens || 0));
    const maxCalls = Math.max(1, ...usage.map((u) => u.calls || 0));
    const x = (v) => M.l + ((W - M.l - M.r) * v) / maxStep;
    const yT = (v) => H - M.b - ((H - M.t - M.b) * v) / maxTok;
    const yC = (v) => H - M.b - ((H - M.t - M.b) * v) / maxCalls;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "wb-plot wb-usage-plot", role: "img", "aria-label": "cumulative usage" });
    axes(svg, x, yT, ticks(0, maxStep, 8).filter((v) => Number.isInteger(v)), ticks(0, maxTok, 2), H, shortNum);
    const right = s("g", { class: "wb-axis" });
    for (const v of ticks(0, maxCalls, 2)) right.append(s("text", { x: W - M.r + 4, y: yC(v) + 3, "text-anchor": "start" }, shortNum(v)));
    svg.append(right);
    const pts = (f, key) => usage.map((u) => x(u.step) + "," + f(u[key] || 0)).join(" ");
    svg.append(s("g", { class: "wb-line-tokens" }, s("polyline", { points: pts(yT, "tokens"), fill: "none" }, s("title", {}, "cumulative tokens (left axis)"))));
    svg.append(s("g", { class: "wb-line-calls" }, s("polyline", { points: pts(yC, "calls"), fill: "none" }, s("title", {}, "cumulative calls (right axis)"))));
    svg.append(s("text", { x: M.l + 4, y: M.t + 8, class: "wb-axis-label" }, "tokens (left) · calls (right), cumulative"));
    usageBox.append(svg);
  }

  const redrawScores = coalesce(drawScores);
  const redrawUsage = coalesce(drawUsage);
  drawScores();
  drawUsage();
  const c1 = watch(model, ["points", "marks"], redrawScores);
  const c2 = watch(model, ["usage", "totals"], redrawUsage);
  return () => {
    c1();
    c2();
  };
}

export default { render };
