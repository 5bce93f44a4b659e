// Samples view: the current batch as a table. Marks the samples chosen for backward (and why);
// pin / exclude a sample for the next steps; click a row to show that sample in the graph panel.
// Under the table, the person's feedback on the selected sample's output (issue 16).
import { h, clear, watch, coalesce, fmtScore, statusClass, bidi, named, showControls, feedbackBox, personNotes } from "./util.js";

function render({ model, el }) {
  el.classList.add("wb-view", "wb-samples-view");
  const caption = h("span", { class: "wb-caption" });
  const head = h("div", { class: "wb-head" }, h("span", { class: "wb-title" }, "Samples"), caption);
  const tbody = h("tbody");
  const table = h("table", { class: "wb-table" },
    h("thead", {}, h("tr", {},
      h("th", { title: "chosen for backward" }, "bwd"), h("th", {}, "sample"), h("th", {}, "input"),
      h("th", {}, "prediction"), h("th", {}, "target"), h("th", {}, "score"), h("th", {}, "next steps"))),
    tbody);
  const scroller = h("div", { class: "wb-table-scroll" }, table);
  const feedback = feedbackBox(model, { placeholder: "What is wrong with this output, and what would be right?", cls: "wb-sample-feedback" });
  el.append(h("div", { class: "wb-card" }, head, scroller, feedback.el));

  function toggle(label, on, title, onClick) {
    const b = h("button", { type: "button", class: "wb-btn wb-small wb-toggle" + (on ? " wb-on" : ""), "aria-pressed": on ? "true" : "false", title }, label);
    b.addEventListener("click", (e) => {
      e.stopPropagation();
      onClick();
    });
    return b;
  }

  function draw() {
    const rows = model.get("rows") || [];
    const selected = model.get("selected_sample");
    clear(caption);
    caption.append(named(model.get("caption") || ""));
    clear(tbody);
    const picked = rows.find((r) => r.sample_id === selected);
    feedback.follow(picked ? { sample_id: picked.sample_id } : null, picked ? "the output of sample " + picked.sample_id : "");
    if (!rows.length) {
      tbody.append(h("tr", {}, h("td", { colspan: "7", class: "wb-empty" }, "The batch appears when a step starts.")));
      return;
    }
    for (const r of rows) {
      const mark = r.selected === true ? "●" : r.selected === false ? "○" : "";
      const tr = h("tr", {
        class: "wb-sample" + (r.sample_id === selected ? " wb-row-selected" : "") + (r.selected ? " wb-backward" : "") +
          (r.excluded ? " wb-excluded" : ""),
        dataset: { sample: r.sample_id }, tabindex: "0",
      },
        h("td", { class: "wb-mark", title: showControls(r.reason) }, mark, r.reason ? h("div", { class: "wb-reason" }, named(r.reason)) : null),
        h("td", { class: "wb-id", title: showControls(r.sample_id) }, named(r.sample_id)),
        h("td", { class: "wb-cell", title: r.input || "" }, h("div", { class: "wb-clip" }, bidi(r.input))),
        h("td", { class: "wb-cell wb-pred", title: r.error || r.prediction || "" }, h("div", { class: "wb-clip" }, bidi(r.prediction)),
          r.error ? h("div", { class: "wb-error wb-clip" }, bidi(r.error)) : null, personNotes(r.feedback, false)),
        h("td", { class: "wb-cell", title: r.target || "" }, h("div", { class: "wb-clip" }, bidi(r.target))),
        h("td", { class: "wb-score" }, fmtScore(r.score), " ", h("span", { class: statusClass(r.status) }, r.status || "")),
        h("td", { class: "wb-flags" },
          toggle("pin", r.pinned, "always send this sample to backward in the next steps",
            () => model.send({ type: "pin", sample_id: r.sample_id, value: !r.pinned })),
          toggle("exclude", r.excluded, "never send this sample to backward in the next steps",
            () => model.send({ type: "exclude", sample_id: r.sample_id, value: !r.excluded }))));
      const pick = () => model.send({ type: "select_sample", sample_id: r.sample_id });
      tr.addEventListener("click", pick);
      tr.addEventListener("keydown", (e) => {
        if (e.key === "Enter") pick();
      });
      tbody.append(tr);
    }
  }

  const redraw = coalesce(draw);
  draw();
  const unwatch = watch(model, ["rows", "selected_sample", "caption"], redraw);
  return () => {
    unwatch();
    feedback.cleanup();
  };
}

export default { render };
