"""Progress of a run as text: a tqdm bar on a terminal or in a notebook, one line per event otherwise.

One more subscriber of the trainer's events (docs/EVENTS.md). On a terminal the bar counts the
samples of the current evaluation; in a log (stdout not a terminal) the same progress is printed
as plain lines, so a long baseline is never silent. Events a person must know about (a parameter
cut off from the loss, a skipped gradient or proposal, an optimizer reply with nothing usable, an
endpoint whose system messages are folded) are always printed as their own line. Everything
written passes through :func:`workbench.redact.redact`.
"""
from __future__ import annotations

import math
import os
import sys
import threading
from typing import Any, Callable, TextIO

from ..errors import BadArgumentError
from ..redact import redact
from .fold import RunFold

# always a line of their own, bar or not: the run goes on, but a person should know
NOTABLE = ("disconnected", "skipped", "no_proposal", "endpoint_probe")
# never a line: too frequent, or said better elsewhere (the step line, the final report)
QUIET = {"node", "gradient", "forward", "checkpoint", "step_finished", "run_finished", "approval_requested",
         "selection", "control", "teacher"}


# -- event text -----------------------------------------------------------------------------------------

def fmt_score(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"


def describe_event(kind: str, d: dict) -> str | None:
    """One line saying what an event means, or None when it is not worth a line."""
    if kind == "run_started":
        return (f"resuming run {d['run_id']} after step {d['resumed_from']}" if d.get("resumed_from") is not None
                else f"run {d['run_id']} started: {d['splits']['train']} train / {d['splits']['val']} val / "
                     f"{d['splits']['test']} test")
    if kind == "eval":
        errored = f", {d['errored']} errored" if d.get("errored") else ""
        left_out = f", {d['left_out']} left out of the comparison" if d.get("left_out") else ""
        return f"{d['phase']} {d['split']} score {fmt_score(d['score'])} on {d['n']} samples{errored}{left_out}"
    if kind == "step_started":
        return f"step started (epoch {d['epoch']}): batch of {len(d['batch'])}"
    if kind == "backward_done":
        return f"{d['gradients']} textual gradients from {len(d['samples'])} samples"
    if kind == "no_proposal":  # source "feedback": no optimizer was asked, so none is blamed
        lead = "nothing to propose for" if d.get("source") == "feedback" else "no usable proposal for"
        return f"{lead} {d['parameter']}: {d['reason']}"
    if kind == "proposal":
        attempt = f", attempt {d['attempt']}" if d.get("attempt") else ""
        return f"proposal {d['proposal_id']} for {d['parameter']} ({d['source']}{attempt})"
    if kind == "minibatch":
        left_out = f", {d['left_out']} left out" if d.get("left_out") else ""
        return (f"{d['proposal_id']} minibatch {fmt_score(d['before'])} -> {fmt_score(d['after'])}"
                f" {'passed' if d['passed'] else 'failed'}{left_out}")
    if kind == "decision":
        return f"{d['proposal_id']} {d['action']} by {d['by']}"
    if kind == "validation":
        return f"{d['proposal_id']} validation {fmt_score(d['score'])} vs best {fmt_score(d['best'])}"
    if kind == "update":
        return f"{d['proposal_id']} {'kept' if d['accepted'] else 'reverted'}: {d['reason']}"
    if kind == "disconnected":
        return (f"no feedback can reach {d['parameter']}: its node {d['node_id']} has no path to the loss "
                f"({d.get('reason') or 'the output was not traced'}); nothing will be proposed for it")
    if kind == "skipped":
        where = f" for {d['parameter']}" if d.get("parameter") else ""
        why = "" if "echoed its prompt" in str(d.get("error")) else " after retries"  # an echo is no failed call
        return f"skipped a {d['stage']} call{where}{why}: {d['error']}"
    if kind == "endpoint_probe":
        if not d.get("fold_system"):
            return None
        how = "it drops them" if d.get("system_messages") == "dropped" else f"set by {d.get('source')}"
        return f"{d['model']} at {d['base_url']}: system messages are folded into the user turn ({how})"
    return None


def step_line(step: int, total: int, d: dict, fold: RunFold) -> str:
    """The line printed when a step finishes (a result: it goes to stdout); the totals are the fold's."""
    totals = fold.totals()
    calls, tokens = totals["calls"], totals["tokens"]
    accepted, rejected = ", ".join(d.get("accepted") or []) or "-", ", ".join(d.get("rejected") or []) or "-"
    return (f"step {step}/{total}: train {fmt_score(d.get('train_score'))} | best val {fmt_score(d.get('best_val'))}"
            f" | accepted {accepted} | rejected {rejected} | {calls} calls, {tokens} tokens so far")


# -- the display ---------------------------------------------------------------------------------------------

def _is_terminal(stream: TextIO) -> bool:
    """A terminal a bar can be drawn on (one that reports a zero size, as some wrappers do, gets lines)."""
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    try:
        size = os.get_terminal_size(stream.fileno())
        return size.columns > 0 and size.lines > 0
    except (AttributeError, ValueError, OSError):
        return True  # a terminal-like stream without a size (tests): tqdm uses its default width


class Progress:
    """Event subscriber. `mode`: "bar" (tqdm), "lines" (plain lines), "off", or "auto" (bar on a terminal).

    Step lines go to `out` (they are results); everything else to `err`. `bar` is the tqdm class
    (`tqdm.auto.tqdm` in a notebook).
    """

    def __init__(self, total_steps: int, splits: dict[str, int], batch_size: int, *,
                 out: TextIO | None = None, err: TextIO | None = None, mode: str = "auto",
                 bar: Callable[..., Any] | None = None) -> None:
        self.total_steps, self.splits, self.batch_size = total_steps, splits, batch_size
        self.out, self.err = out or sys.stdout, err or sys.stderr
        if mode == "auto":
            mode = "bar" if _is_terminal(self.err) else "lines"
        if mode not in ("bar", "lines", "off"):
            raise BadArgumentError(f"mode must be auto, bar, lines or off, not {mode!r}")
        self.mode = mode
        self.bar_class = bar
        self.lock = threading.RLock()
        self.key: tuple | None = None  # (split, phase) of the evaluation being counted
        self.done = 0
        self.bar: Any = None
        self.said: set[str] = set()  # notable lines already printed
        self.step_sizes: dict[str, int] = {}  # this step's batch and minibatch-gate sample counts
        self.fold = RunFold(keep_rows=False)  # the run's numbers (usage totals), as every reader has them

    # -- the subscriber
    def __call__(self, event) -> None:
        with self.lock:
            self.fold.apply(event)
            d = event.data
            if event.type == "forward":
                self._count(d)
            elif event.type == "eval":
                self.key = None  # the evaluation ended: the next forward starts a new count
            elif event.type == "step_started":
                self.step_sizes["train"] = len(d.get("batch") or ()) or self.batch_size
            elif event.type == "backward_done":  # the minibatch gate compares on the back-propagated samples
                self.step_sizes["minibatch"] = len(d.get("samples") or ()) or self.batch_size
            elif event.type == "step_finished":
                self._write(step_line(event.step, self.total_steps, d, self.fold), self.out)
            if event.type == "run_finished":
                self.close()
            elif self.mode != "off" and event.type not in ("forward", "step_finished"):
                text = describe_event(event.type, d)
                if text is None:
                    return
                line = f"[step {event.step}/{self.total_steps}] {text}"
                if event.type in NOTABLE:
                    if line not in self.said:  # one line per endpoint, per parameter cut off, ... per step
                        self.said.add(line)
                        self._write(line, self.err)
                elif self.mode == "lines" and event.type not in QUIET and not (
                        event.type == "eval" and d.get("phase") == "proposal"):
                    self._write(line, self.err)
                elif self.bar is not None:
                    self.bar.set_postfix_str(redact(text)[:80], refresh=True)

    def _count(self, d: dict) -> None:
        key = (d.get("split"), d.get("phase"))
        self.done = self.done + 1 if key == self.key else 1
        self.key = key
        size = self._size(*key)
        label = f"{key[1]} {key[0]}" if key[1] != key[0] else str(key[0])
        if self.mode == "bar":
            if self.bar is None or self.done == 1:
                self._new_bar(label, size)
            self.bar.update(1)
        elif self.mode == "lines" and size and (self.done < size) and (
                size <= 10 or self.done % math.ceil(size / 10) == 0):
            # the evaluation's own line comes when it ends; meanwhile, say that it is moving
            self._write(f"[step {self.fold.step}/{self.total_steps}] {label}: {self.done}/{size} samples", self.err)

    def _size(self, split: str | None, phase: str | None) -> int | None:
        if split == "minibatch":
            return self.step_sizes.get("minibatch", self.batch_size)
        if split == "train" and phase == "train":
            return self.step_sizes.get("train", self.batch_size)
        return self.splits.get(split or "")

    def _new_bar(self, label: str, size: int | None) -> None:
        if self.bar_class is None:
            from tqdm import tqdm
            self.bar_class = tqdm
        if self.bar is None:
            self.bar = self.bar_class(total=size, desc=label, unit="sample", file=self.err, leave=False,
                                      dynamic_ncols=True)
        else:
            self.bar.reset(total=size)
            self.bar.set_description_str(label)
        self.bar.set_postfix_str(f"step {self.fold.step}/{self.total_steps}", refresh=False)

    def _write(self, text: str, stream: TextIO) -> None:
        text = redact(text)
        if self.bar is not None:
            self.bar.write(text, file=stream)  # clears the bar, writes the line, redraws the bar
            stream.flush()
        else:
            print(text, file=stream, flush=True)

    # -- for callers
    def pause(self) -> None:
        """Before a question is written to the terminal: take the bar off the screen."""
        self.close()

    def say(self, text: str) -> None:
        """A line on `err` that does not tear the bar."""
        with self.lock:
            self._write(text, self.err)

    def close(self) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
                self.key = None


def attach_progress(trainer: Any, *, mode: str = "bar", out: TextIO | None = None,
                    err: TextIO | None = None) -> Callable[[], None]:
    """Show a `tqdm.auto` bar (a widget in a notebook) for `trainer`'s run; returns a function that detaches it.

    For `fit()` in a notebook without the dashboard; `Trainer(progress=...)` calls it.
    """
    from tqdm.auto import tqdm

    splits = {name: len(getattr(trainer, name, ()) or ()) for name in ("train", "val", "test")}
    config = getattr(trainer, "config", None)
    progress = Progress(getattr(trainer, "total_steps", 0), splits, getattr(config, "batch_size", 0), out=out,
                        err=err, mode=mode, bar=tqdm)
    unsubscribe = trainer.bus.subscribe(progress)

    def detach() -> None:
        unsubscribe()
        progress.close()
    return detach
