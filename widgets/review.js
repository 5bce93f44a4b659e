// Review view: the pending proposal as a word diff against the current value, with the gradient
// summary that motivated it and its scores; Accept / Reject / Edit; auto-approve; decision history.
// Every button carries the id of the proposal it was drawn for; the kernel ignores stale ids.
// A person teaches here too (issue 16): a reason sent with the decision, feedback on a parameter, and
// every text a person wrote is marked as theirs (history, gradient summaries, "Your feedback").
import { h, clear, watch, coalesce, fmtScore, pre, diffView, statusClass, named, bidi, parameterHead,
  feedbackBox, personBadge, personNotes, summaryView, keepFocus, showControls } from "./util.js";

const MAX_HISTORY_SHOWN = 200;

function scoreLine(p) {
  const bits = [];
  if (p.minibatch_before !== null && p.minibatch_before !== undefined || p.minibatch_after !== null && p.minibatch_after !== undefined) {
    bits.push("minibatch " + fmtScore(p.minibatch_before) + " → " + fmtScore(p.minibatch_after));
  }
  if (p.validation !== null && p.validation !== undefined) bits.push("validation " + fmtScore(p.validation) + (p.best !== null && p.best !== undefined ? " (best " + fmtScore(p.best) + ")" : ""));
  if (p.gain) bits.push("gain " + p.gain);
  return bits.join(" · ");
}

function render({ model, el }) {
  el.classList.add("wb-view", "wb-review-view");
  const autoBox = h("input", { type: "checkbox", class: "wb-auto" });
  const autoLabel = h("label", { class: "wb-switch", title: "accept every proposal automatically; validation still decides what is kept" }, autoBox, " auto-approve");
  autoBox.addEventListener("change", () => model.send({ type: "auto", value: autoBox.checked }));
  const head = h("div", { class: "wb-head" }, h("span", { class: "wb-title" }, "Review"), h("span", { class: "wb-spacer" }), autoLabel);
  const pendingBox = h("div", { class: "wb-pending-box" });
  const notice = h("div", { class: "wb-notice", role: "status" });
  const activity = h("div", { class: "wb-activity", role: "status" });
  const paramsBox = h("details", { class: "wb-params" });
  const historyBox = h("div", { class: "wb-history" });
  // feedback on a parameter: goes to its optimizer from the next call (the box is never redrawn)
  const paramPicker = h("select", { class: "wb-feedback-param", "aria-label": "parameter to give feedback on" });
  let paramPicked = false; // the person chose a parameter: the pending proposal no longer moves the box
  paramPicker.addEventListener("change", () => {
    paramPicked = true;
    followParam();
  });
  const paramFeedback = feedbackBox(model, { placeholder: "What should this prompt say or stop saying? The optimizer reads it.",
    cls: "wb-param-feedback" });
  const teachBox = h("details", { class: "wb-teach" }, h("summary", {}, "Teach: feedback on a parameter"),
    h("label", { class: "wb-row-label" }, "parameter ", paramPicker), paramFeedback.el);
  const mineBox = h("div", { class: "wb-mine" });
  el.append(h("div", { class: "wb-card" }, head, notice, pendingBox, activity, teachBox, mineBox, paramsBox,
    h("h4", { class: "wb-h" }, "History"), historyBox));

  let drawnFor = null; // the proposal id the current buttons belong to
  let drawnKey = null;
  let editing = null; // {id, text} while the person edits
  let reasonDraft = null; // {id, text}: the reason typed for the pending proposal survives redraws
  const openIds = new Set();
  let paramsTouched = false; // the person opened or closed the parameter list: leave it so
  paramsBox.addEventListener("click", (e) => { if (e.target.closest("summary")) paramsTouched = true; });

  function drawPending() {
    keepFocus(pendingBox, fillPending);
    followParam();
  }

  function fillPending() {
    const p = model.get("pending") || {};
    const key = JSON.stringify(p);
    if (key === drawnKey) return;
    drawnKey = key;
    clear(pendingBox);
    if (!p.proposal_id) {
      drawnFor = null;
      editing = null;
      reasonDraft = null;
      pendingBox.append(h("p", { class: "wb-note" }, "No proposal is waiting for you."));
      return;
    }
    const pid = p.proposal_id;
    if (drawnFor !== pid) {
      editing = null;
      reasonDraft = null;
    }
    drawnFor = pid;
    const status = h("div", { class: "wb-action-status", role: "status" });
    const buttons = [];
    // why: optional, never in the way of a one-click decision; sent with whichever button is pressed
    const reason = h("input", { type: "text", class: "wb-reason-text", placeholder: "why? (optional; the optimizer reads it)",
      "aria-label": "reason for your decision", dataset: { focusKey: "reason-" + pid } });
    reason.value = reasonDraft && reasonDraft.id === pid ? reasonDraft.text : "";
    reason.addEventListener("input", () => (reasonDraft = { id: pid, text: reason.value }));
    const send = (action, text) => {
      buttons.forEach((b) => (b.disabled = true));
      status.textContent = action === "reject" ? "rejecting…" : "sending…";
      // the id is the one this card was drawn for, never "whatever is pending now"
      const msg = { type: "decide", proposal_id: pid, action, text: text === undefined ? null : text };
      if (reason.value.trim()) msg.reason = reason.value;
      model.send(msg);
    };
    const button = (label, action, cls) => {
      const b = h("button", { type: "button", class: "wb-btn " + cls, dataset: { action, proposal: pid } }, label);
      buttons.push(b);
      return b;
    };
    const accept = button("Accept", "accept", "wb-accept");
    const reject = button("Reject", "reject", "wb-reject");
    const edit = button("Edit", "edit", "wb-edit");
    accept.addEventListener("click", () => send("accept"));
    reject.addEventListener("click", () => send("reject"));
    const mainActions = h("div", { class: "wb-actions wb-main-actions" }, accept, reject, edit);

    // the edit box starts from the FULL proposed text (the kernel never clips `new`)
    const area = h("textarea", { class: "wb-edit-text", rows: "6", "aria-label": "edited value", dataset: { focusKey: "edit-" + pid } });
    area.value = editing && editing.id === pid ? editing.text : p.new || "";
    area.addEventListener("input", () => (editing = { id: pid, text: area.value }));
    const acceptEdited = button("Accept edited", "edit", "wb-accept");
    const cancel = h("button", { type: "button", class: "wb-btn wb-cancel" }, "Cancel edit");
    const editBox = h("div", { class: "wb-edit-box" }, area,
      h("div", { class: "wb-actions" }, acceptEdited, cancel, h("span", { class: "wb-note" }, "while you edit, only your text can be accepted")));
    // One accept while an edit is open: the plain Accept is gone, so an edit is never silently dropped.
    const showEdit = (open) => {
      editBox.hidden = !open;
      mainActions.hidden = open;
    };
    showEdit(!!(editing && editing.id === pid));
    edit.addEventListener("click", () => {
      editing = { id: pid, text: area.value };
      showEdit(true);
      area.focus();
    });
    cancel.addEventListener("click", () => {
      editing = null;
      area.value = p.new || "";
      showEdit(false);
    });
    acceptEdited.addEventListener("click", () => {
      if (!area.value.trim()) {
        status.textContent = "the edited text is empty";
        return;
      }
      send("edit", area.value);
    });

    pendingBox.append(h("div", { class: "wb-pending", dataset: { proposal: pid } },
      h("div", { class: "wb-pending-title" }, "Proposal ", h("b", {}, named(pid)), " for ", h("code", {}, named(p.parameter || "?")),
        p.role ? h("span", { class: "wb-kind" }, named(p.role)) : null, p.source ? h("span", { class: "wb-kind" }, named(p.source)) : null,
        h("span", { class: "wb-kind" }, "step " + p.step)),
      h("div", { class: "wb-scores" }, scoreLine(p),
        p.validation === null || p.validation === undefined ? " · validated after your decision" : ""),
      h("div", { class: "wb-sub" }, "Change against the current value"),
      diffView(p.diff),
      p.gradient_summary ? h("details", { class: "wb-gradsum", open: true }, h("summary", {}, "Gradient summary that motivated it"),
        summaryView(p.gradient_parts, p.gradient_summary)) : null,
      h("label", { class: "wb-reason-row" }, "Reason ", reason), mainActions, editBox, status));
  }

  function drawParams() {
    const params = model.get("parameters") || [];
    const wasOpen = paramsBox.open;
    clear(paramsBox);
    paramsBox.append(h("summary", {}, "Current values (" + params.length + " parameters)"));
    let trouble = false;
    for (const q of params) {
      const notes = q.notes || [];
      trouble = trouble || !!q.disconnected;
      paramsBox.append(h("div", { class: "wb-param" + (q.disconnected ? " wb-param-disconnected" : ""), dataset: { param: q.name } },
        parameterHead(q),
        notes.map((n) => h("div", { class: "wb-param-note", dataset: { kind: n.kind } }, "step " + n.step + ": ", named(n.text))),
        pre(q.value, "wb-param-value")));
    }
    paramsBox.open = wasOpen || (trouble && !paramsTouched);
  }

  function drawHistory() {
    const items = model.get("history") || [];
    clear(historyBox);
    if (!items.length) {
      historyBox.append(h("p", { class: "wb-note" }, "No decisions yet."));
      return;
    }
    for (const p of items.slice(0, MAX_HISTORY_SHOWN)) {
      const d = h("details", { class: "wb-hist", dataset: { proposal: p.proposal_id, status: p.status } });
      d.open = openIds.has(p.proposal_id);
      d.addEventListener("toggle", () => (d.open ? openIds.add(p.proposal_id) : openIds.delete(p.proposal_id)));
      const by = p.action ? p.action + (p.by ? " by " + p.by : "") : "";
      d.append(h("summary", {},
        h("span", { class: "wb-kind" }, "step " + p.step), " ", h("b", {}, named(p.proposal_id)), " ", h("code", {}, named(p.parameter)),
        " ", h("span", { class: statusClass(p.status) }, p.status), by ? [" ", named(by)] : "",
        p.decision_reason ? [" ", personBadge()] : null, " ", h("span", { class: "wb-scores" }, scoreLine(p))));
      if (p.diff) d.append(h("div", { class: "wb-sub" }, "Proposed change"), diffView(p.diff));
      if (p.edited_diff) d.append(h("div", { class: "wb-sub" }, personBadge(), " As edited (the optimizer's text above, yours here)"), diffView(p.edited_diff));
      if (p.decision_reason) d.append(h("div", { class: "wb-person-reason" }, personBadge(), " reason: ", bidi(p.decision_reason, "wb-person-said")));
      if (p.reason) d.append(h("div", { class: "wb-reason" }, named(p.reason)));
      if (p.gradient_summary) d.append(h("div", { class: "wb-sub" }, "Gradient summary"), summaryView(p.gradient_parts, p.gradient_summary));
      if (!p.diff && !p.gradient_summary) d.append(h("p", { class: "wb-note" },
        "An older proposal: its change and feedback are in open_run(...).proposals and the report."));
      if (p.accepted === true || p.accepted === false) d.append(branchButtons(p));
      historyBox.append(d);
    }
    if (items.length > MAX_HISTORY_SHOWN) historyBox.append(h("p", { class: "wb-note" }, (items.length - MAX_HISTORY_SHOWN) + " older proposals not shown"));
  }

  // the parameter the feedback box is on: the person's choice, else the pending proposal's, else the first
  function followParam() {
    const names = (model.get("parameters") || []).filter((q) => q.trainable !== false).map((q) => q.name);
    const pendingParam = ((model.get("pending") || {}).parameter || "").split("+")[0];
    const have = [...paramPicker.options].map((o) => o.value);
    if (have.join("\n") !== names.join("\n")) {
      const keep = paramPicker.value;
      clear(paramPicker);
      for (const n of names) paramPicker.append(h("option", { value: n }, showControls(n)));
      if (names.includes(keep)) paramPicker.value = keep;
    }
    if (!paramPicked && names.includes(pendingParam)) paramPicker.value = pendingParam;
    const name = paramPicker.value;
    teachBox.hidden = !names.length;
    paramFeedback.follow(name ? { parameter: name } : null, name ? "parameter " + name : "");
  }

  // everything the person wrote in this run: feedback (with what became of it); reasons are in the history
  function drawMine() {
    const items = model.get("feedback") || [];
    clear(mineBox);
    if (!items.length) {
      mineBox.hidden = true;
      return;
    }
    mineBox.hidden = false;
    mineBox.append(h("h4", { class: "wb-h" }, "Your feedback (" + items.length + ")"), personNotes(items));
  }

  // "branch from here": a new run from the step before this proposal, taking the other decision on it,
  // or deciding again (a person answers every proposal of the branch from this step on)
  function branchButtons(p) {
    const decision = p.accepted ? "reject" : "accept";
    const other = h("button", { type: "button", class: "wb-btn wb-branch", dataset: { action: "branch", decision },
      title: "a new run from the state after step " + (p.step - 1) + " that " + (p.accepted ? "rejects" : "keeps") +
        " this proposal; this run stays as it is" }, "Branch from here: " + decision + " it");
    const again = h("button", { type: "button", class: "wb-btn wb-branch", dataset: { action: "branch-step" },
      title: "a new run from the state after step " + (p.step - 1) + " in which you decide every proposal again; " +
        "this run stays as it is" }, "Branch before step " + p.step + ": decide again");
    const send = (msg, text) => {
      for (const x of [other, again]) x.disabled = true;
      drawNotice(text);
      model.send(msg);
    };
    other.addEventListener("click", () => send({ type: "branch", proposal_id: p.proposal_id, decision },
      "Making a branch that takes the other decision on " + p.proposal_id + "…"));
    again.addEventListener("click", () => send({ type: "branch", step: p.step - 1 },
      "Making a branch from the state after step " + (p.step - 1) + "…"));
    return h("div", { class: "wb-actions" }, other, again);
  }

  function drawActivity() {
    const text = model.get("activity") || "";
    clear(activity);
    if (text) activity.append("In progress: ", named(text));
    activity.hidden = !text;
  }

  function drawAuto() {
    autoBox.checked = !!model.get("auto_approve");
    autoLabel.hidden = !model.get("can_decide");
  }

  function drawNotice(text) {
    const shown = text || model.get("notice") || "";
    clear(notice);
    if (shown) notice.append(named(shown));
    notice.hidden = !shown;
  }

  function onMessage(msg) {
    if (msg && msg.type === "branch_result") {
      drawNotice(msg.ok ? msg.reason : "Not branched: " + (msg.reason || "the branch could not be made") + ".");
      for (const b of historyBox.querySelectorAll("button.wb-branch")) b.disabled = false;
      return;
    }
    if (!msg || msg.type !== "decision_result") return;
    if (!msg.ok) {
      drawNotice("Not applied: " + (msg.reason || "that proposal is no longer pending") + ".");
      if (msg.proposal_id === drawnFor) {
        for (const b of pendingBox.querySelectorAll("button")) b.disabled = false;
        const st = pendingBox.querySelector(".wb-action-status");
        if (st) st.textContent = "";
      }
    } else {
      drawNotice("");
    }
  }

  const redrawPending = coalesce(drawPending);
  const redrawHistory = coalesce(drawHistory);
  const redrawParams = coalesce(drawParams);
  drawPending();
  drawParams();
  drawHistory();
  drawAuto();
  drawNotice();
  drawActivity();
  drawMine();
  followParam();
  model.on("msg:custom", onMessage);
  const cleanups = [
    watch(model, ["pending"], redrawPending),
    watch(model, ["history"], redrawHistory),
    watch(model, ["parameters"], () => {
      redrawParams();
      followParam();
    }),
    watch(model, ["feedback"], coalesce(drawMine)),
    watch(model, ["auto_approve", "can_decide"], drawAuto),
    watch(model, ["notice"], () => drawNotice()),
    watch(model, ["activity"], drawActivity),
  ];
  return () => {
    model.off("msg:custom", onMessage);
    cleanups.forEach((c) => c());
    paramFeedback.cleanup();
  };
}

export default { render };
