// Controls view: start, pause / resume, stop, run one step, export the tuned prompts.
import { h, clear, watch, fmtScore, statusClass, bidi, named } from "./util.js";

function render({ model, el }) {
  el.classList.add("wb-view", "wb-controls-view");
  const btn = (label, action, title) => {
    const b = h("button", { type: "button", class: "wb-btn", dataset: { action }, title }, label);
    b.addEventListener("click", () => {
      const a = b.dataset.action;
      model.send(a === "export" ? { type: "control", action: a, path: path.value, format: fmt.value } : { type: "control", action: a });
    });
    return b;
  };
  const start = btn("Start", "start", "start training in the background");
  const pause = btn("Pause", "pause", "pause at the next safe point");
  const stop = btn("Stop", "stop", "stop the run (it ends with status 'stopped')");
  const step = btn("Step", "step", "run one training step, then pause");
  const badge = h("span", { class: statusClass("idle") }, "idle");
  const detail = h("span", { class: "wb-caption" });
  const runInfo = h("div", { class: "wb-run-info" });
  const path = h("input", { type: "text", class: "wb-path", "aria-label": "export path", size: "24" });
  const fmt = h("select", { class: "wb-format", "aria-label": "export format" });
  const exp = btn("Export", "export", "write the tuned prompts (with provenance) to the file");
  const message = h("div", { class: "wb-message", role: "status" });
  const summary = h("div", { class: "wb-summary" });
  const forecast = h("div", { class: "wb-forecast", title: "calls and tokens this run is expected to spend (least to most), and what it spent so far" });
  el.append(h("div", { class: "wb-card wb-controls" },
    h("div", { class: "wb-head" }, h("span", { class: "wb-title" }, "Workbench"), badge, detail),
    forecast,
    runInfo,
    h("div", { class: "wb-actions" }, start, pause, stop, step, h("span", { class: "wb-spacer" }), path, fmt, exp),
    message, summary));

  let pathTouched = false;
  path.addEventListener("input", () => (pathTouched = true));

  function draw() {
    const status = model.get("status") || "idle";
    badge.className = statusClass(status);
    badge.textContent = status === "waiting" ? "waiting for you" : status;
    clear(detail);
    detail.append(named(model.get("detail") || ""));
    forecast.textContent = model.get("forecast") || "";
    clear(runInfo);
    const runId = model.get("run_id") || "";
    const runDir = model.get("run_dir") || "";
    if (runId) runInfo.append(h("span", { class: "wb-run-id" }, "run ", h("code", {}, named(runId))));
    if (runDir) runInfo.append(h("span", { class: "wb-run-dir", title: "events.jsonl, checkpoints and the summary are written here" }, "folder ", h("code", {}, named(runDir))));
    const running = status === "running" || status === "starting" || status === "waiting";
    const live = running || status === "paused" || status === "stopping";
    start.disabled = live || status === "finished";
    pause.dataset.action = status === "paused" ? "resume" : "pause";
    pause.textContent = status === "paused" ? "Resume" : "Pause";
    pause.disabled = !(running || status === "paused");
    stop.disabled = !live || status === "stopping";
    step.disabled = running || status === "stopping" || status === "finished";
    if (!pathTouched) path.value = model.get("export_path") || "";
    const formats = model.get("export_formats") || [];
    if (fmt.options.length !== formats.length) {
      clear(fmt);
      for (const f of formats) fmt.append(h("option", { value: f }, f));
    }
    clear(message);
    message.append(named(model.get("message") || ""));
    const sm = model.get("summary") || {};
    clear(summary);
    if (sm.status) {
      const b = sm.baseline || {};
      const f = sm.final || {};
      summary.append(h("span", {}, "run " + sm.status + " · validation " + fmtScore(b.val) + " → " + fmtScore(f.val) +
        " · test " + fmtScore(b.test) + " → " + fmtScore(f.test) +
        (sm.best_step !== null && sm.best_step !== undefined ? " · best at step " + sm.best_step : "")));
      if (sm.error) summary.append(h("div", { class: "wb-error" }, bidi(sm.error)));
    }
  }

  draw();
  return watch(model, ["status", "detail", "message", "summary", "export_path", "export_formats", "step", "epoch", "run_id", "run_dir", "forecast"], draw);
}

export default { render };
