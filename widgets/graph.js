// Graph view: the pipeline as Graphviz SVG (laid out by the kernel, inserted once per layout), node
// colours for live status (only classes change on updates), and a side panel for the clicked node,
// where a person can write feedback on that node's output for the selected sample (issue 16).
import { h, s, clear, safeSvg, pre, watch, coalesce, fmtScore, statusClass, bidi, named, showControls, parameterHead,
  feedbackBox, personBadge, personNotes, keepFocus } from "./util.js";

const STATES = ["waiting", "running", "done", "failed", "gradient"];
const STATE_LABEL = { waiting: "waiting", running: "running", done: "done", failed: "failed", gradient: "receiving gradient" };

function render({ model, el }) {
  el.classList.add("wb-view", "wb-graph-view");
  const caption = h("span", { class: "wb-caption" });
  const legend = h("span", { class: "wb-legend" },
    STATES.map((st) => h("span", { class: "wb-legend-item" }, h("span", { class: "wb-swatch wb-st-" + st }), STATE_LABEL[st])),
    h("span", { class: "wb-legend-item", title: "a trainable parameter of this node gets no feedback: its output has no path to the loss" },
      h("span", { class: "wb-swatch wb-swatch-broken" }), "no path to the loss"));
  let fit = true;
  const fitBtn = h("button", { class: "wb-btn wb-small", type: "button", title: "fit the graph into the view, or show it at full size" }, "full size");
  const head = h("div", { class: "wb-head" }, h("span", { class: "wb-title" }, "Graph"), caption, h("span", { class: "wb-spacer" }), legend, fitBtn);
  const canvas = h("div", { class: "wb-graph-canvas wb-fit" });
  const panelBody = h("div", { class: "wb-panel-body" });
  // the feedback box outlives the panel's redraws: what a person is writing is never rebuilt away
  const feedback = feedbackBox(model, { placeholder: "What is wrong with this output, and what should it have been?", cls: "wb-node-feedback" });
  const panel = h("aside", { class: "wb-panel", "aria-label": "node details" }, panelBody, feedback.el);
  panel.hidden = true;
  const body = h("div", { class: "wb-graph-body" }, canvas, panel);
  el.append(h("div", { class: "wb-card" }, head, body));

  let nodes = new Map();
  let svgText = null;
  let svgEl = null;
  let localSelected = null;
  let panelNode = null;

  fitBtn.addEventListener("click", () => {
    fit = !fit;
    canvas.classList.toggle("wb-fit", fit);
    fitBtn.textContent = fit ? "full size" : "fit";
    sizeSvg();
  });

  function sizeSvg() {
    if (!svgEl) return;
    if (fit) {
      // shrink a large graph into the card, but never blow a small one up past its own size
      svgEl.removeAttribute("width");
      svgEl.removeAttribute("height");
      svgEl.style.maxWidth = svgEl.dataset.width || "";
    } else {
      svgEl.style.maxWidth = "";
      svgEl.setAttribute("width", svgEl.dataset.width || "");
      svgEl.setAttribute("height", svgEl.dataset.height || "");
    }
  }

  function select(id) {
    localSelected = id;
    paintSelected();
    model.send({ type: "select_node", node_id: id });
  }

  function drawSvg() {
    const text = model.get("svg") || "";
    if (text === svgText) return;
    svgText = text;
    clear(canvas);
    nodes = new Map();
    svgEl = safeSvg(text);
    if (!svgEl) {
      canvas.append(h("div", { class: "wb-empty" }, "The graph appears when the first sample has run."));
      return;
    }
    svgEl.dataset.width = svgEl.getAttribute("width") || "";
    svgEl.dataset.height = svgEl.getAttribute("height") || "";
    svgEl.classList.add("wb-svg");
    svgEl.setAttribute("role", "group");
    svgEl.setAttribute("aria-label", "pipeline graph");
    // Graphviz's tooltips hold the raw node names: spell out their invisible controls, as the labels do
    for (const t of svgEl.querySelectorAll("title")) t.textContent = showControls(t.textContent);
    for (const a of svgEl.querySelectorAll("a")) {
      for (const attr of [...a.attributes]) if (attr.localName === "title") attr.value = showControls(attr.value);
    }
    for (const g of svgEl.querySelectorAll("g.node")) {
      const id = g.id.startsWith("node-") ? g.id.slice(5) : g.id;
      g.dataset.nodeId = id;
      g.setAttribute("tabindex", "0");
      g.setAttribute("role", "button");
      g.addEventListener("click", (e) => {
        e.preventDefault();
        select(id);
      });
      g.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          select(id);
        }
      });
      nodes.set(id, g);
    }
    sizeSvg();
    canvas.append(svgEl);
    paintStatus();
    paintSelected();
    paintBadges();
  }

  // Nodes whose parameter has no path to the loss: a dashed red outline and the reason as a tooltip.
  function paintBadges() {
    const badges = model.get("badges") || {};
    for (const [id, g] of nodes) {
      const why = badges[id] || "";
      g.classList.toggle("wb-disconnected", !!why);
      let tip = g.querySelector(":scope > title.wb-why");
      if (why) {
        if (!tip) {
          tip = s("title", { class: "wb-why" });
          g.prepend(tip);
        }
        tip.textContent = showControls(why);
      } else if (tip) {
        tip.remove();
      }
    }
  }

  function paintStatus() {
    const status = model.get("node_status") || {};
    for (const [id, g] of nodes) {
      const st = STATES.includes(status[id]) ? status[id] : "waiting";
      if (g.dataset.status === st) continue;
      for (const c of STATES) g.classList.remove("wb-st-" + c);
      g.classList.add("wb-st-" + st);
      g.dataset.status = st;
    }
  }

  function paintSelected() {
    const sel = localSelected !== null ? localSelected : model.get("selected_node");
    for (const [id, g] of nodes) g.classList.toggle("wb-selected", id === sel);
  }

  function section(title, ...children) {
    return h("section", { class: "wb-section" }, h("h4", { class: "wb-h" }, title), ...children);
  }

  function drawPanel() {
    keepFocus(panel, fillPanel);
  }

  function fillPanel() {
    const p = model.get("panel") || {};
    const scroll = panel.scrollTop;
    clear(panelBody);
    if (!p.node_id) {
      panel.hidden = true;
      feedback.follow(null, "");
      return;
    }
    panel.hidden = false;
    const close = h("button", { class: "wb-btn wb-small wb-close", type: "button", title: "close", "aria-label": "close" }, "×");
    close.addEventListener("click", () => select(""));
    panelBody.append(h("div", { class: "wb-panel-head" },
      h("strong", { class: "wb-panel-title" }, named(p.node_id)),
      h("span", { class: "wb-kind" }, p.kind || ""), h("span", { class: "wb-spacer" }), close));

    const ids = model.get("sample_ids") || [];
    const picker = h("select", { class: "wb-sample-picker", "aria-label": "sample" });
    // an <option> holds only a string: ids with their invisible controls spelled out
    if (!ids.includes(p.sample_id)) picker.append(h("option", { value: p.sample_id || "" }, p.sample_id ? showControls(p.sample_id) : "(none)"));
    for (const id of ids) picker.append(h("option", { value: id }, showControls(id)));
    picker.value = p.sample_id || "";
    picker.addEventListener("change", () => model.send({ type: "select_sample", sample_id: picker.value }));
    panelBody.append(h("label", { class: "wb-row-label" }, "sample ", picker));
    if (p.note) panelBody.append(h("p", { class: "wb-note" }, named(p.note)));
    if (p.broken) panelBody.append(h("p", { class: "wb-error wb-broken" }, named(p.broken)));

    if ((p.parameters || []).length) {
      panelBody.append(section("Parameters (current value)", ...(p.parameters || []).map((q) =>
        h("div", { class: "wb-param", dataset: { param: q.name } },
          parameterHead(q),
          pre(q.value, "wb-param-value")))));
    }

    for (const call of p.calls || []) {
      const box = h("section", { class: "wb-call" + (call.current ? " wb-current" : ""), dataset: { nodeId: call.node_id } },
        h("h4", { class: "wb-h" }, p.multi_call ? "Call " + call.call_index + " · " : "", named(call.node_id),
          call.status ? h("span", { class: statusClass(call.status) }, call.status) : null));
      if ((call.inputs || []).length) {
        box.append(h("div", { class: "wb-sub" }, "Inputs"));
        for (const [k, v] of call.inputs) box.append(h("div", { class: "wb-kv" }, h("span", { class: "wb-k" }, named(k)), pre(v, "wb-input")));
      }
      if (call.output) {
        box.append(h("div", { class: "wb-sub" }, "Output"), pre(call.output, "wb-output"));
      }
      if (call.error) box.append(h("div", { class: "wb-error" }, bidi(call.error)));
      box.append(h("div", { class: "wb-sub" }, "Gradients received"));
      if (!(call.gradients || []).length) {
        box.append(h("p", { class: "wb-note" }, "none yet"));
      }
      for (const g of call.gradients || []) {
        const person = g.source === "person";
        box.append(h("div", { class: "wb-grad" + (person ? " wb-grad-person" : ""), dataset: { sample: g.sample_id, source: g.source || "" } },
          h("div", { class: "wb-grad-meta" }, person ? [personBadge(), " "] : null, "sample ", named(g.sample_id),
            person ? " · written by a person" : [" · from ", named(g.from)], " · ",
            g.kind === "parameter" ? ["on parameter ", named(g.target)] : "on its output",
            g.score !== null && g.score !== undefined ? " · score " + fmtScore(g.score) : ""),
          pre(g.text, "wb-grad-text")));
      }
      if ((call.person || []).length) box.append(h("div", { class: "wb-sub" }, "Your feedback on this output"), personNotes(call.person, false));
      panelBody.append(box);
    }
    const target = (p.calls || []).find((c) => c.current) || (p.calls || [])[0];
    feedback.el.hidden = p.kind === "loss"; // the loss's "output" is the score: say what is wrong on the sample's row
    feedback.follow(p.sample_id && target ? { sample_id: p.sample_id, node: target.node_id } : null,
      target ? target.node_id + "'s output for sample " + p.sample_id : "");
    const current = panel.querySelector(".wb-call.wb-current");
    if (p.node_id !== panelNode && current && p.multi_call) {
      panel.scrollTop = Math.max(0, current.offsetTop - 4); // a loop's clicked call, not call 1
    } else {
      panel.scrollTop = p.node_id === panelNode ? scroll : 0;
    }
    panelNode = p.node_id;
  }

  const onSvg = coalesce(drawSvg);
  const onStatus = coalesce(paintStatus);
  const onPanel = coalesce(drawPanel);
  const onSelected = () => {
    localSelected = null;
    paintSelected();
  };
  const onCaption = () => {
    clear(caption);
    caption.append(named(model.get("caption") || ""));
  };

  drawSvg();
  drawPanel();
  onCaption();
  const cleanups = [
    watch(model, ["svg"], onSvg),
    watch(model, ["node_status"], onStatus),
    watch(model, ["badges"], coalesce(paintBadges)),
    watch(model, ["panel", "sample_ids"], onPanel),
    watch(model, ["selected_node"], onSelected),
    watch(model, ["caption"], onCaption),
  ];
  return () => {
    cleanups.forEach((c) => c());
    feedback.cleanup();
  };
}

export default { render };
