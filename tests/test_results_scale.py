"""At a paper-sized run (bench/scale.py), reading results must not grow faster than the log: the
event log is folded once and incrementally, `runs()` does not parse the per-sample lines it never
shows, and a report lists each step's feedback once however many attempts answered it."""
import itertools
import shutil
import threading
import warnings

import pandas as pd
import pytest

import workbench.records.fold as fold_module
import workbench.records.results as results
from workbench.llm.models import Models
from workbench.records.report import render_report
from workbench.records.fold import RunFold
from workbench.records.results import open_run, runs
from workbench.records.store import read_events
from workbench.training.trainer import TrainConfig, Trainer

from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, same_text, task


def numbered_backward():
    """Feedback that differs per call, so a test can count where each one is shown."""
    counter, lock = itertools.count(1), threading.Lock()

    def respond(messages):
        with lock:
            return f"Feedback number {next(counter)}: the output must be in capital letters."
    return respond


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scale")
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, numbered_backward(), Optimizer()),
                      config=TrainConfig(max_steps=2, batch_size=4, concurrency=2), run_dir=tmp / "run", task="shout")
    trainer.fit()
    return tmp / "run"


class Parses:
    """Counts the lines the fold behind `open_run` (workbench.records.fold) parses, by event type."""

    def __init__(self, monkeypatch):
        self.types: list[str] = []
        real = fold_module.parse_event_line

        def counting(line):
            event, problem = real(line)
            self.types.append(event.type if event is not None else "?")
            return event, problem
        monkeypatch.setattr(fold_module, "parse_event_line", counting)


def full_fold(folder) -> RunFold:
    """The tables from every event parsed and folded in order (what open_run did before)."""
    tables = RunFold()
    for event in read_events(folder / "events.jsonl"):
        tables.apply(event)
    return tables


def test_tables_equal_a_fold_of_every_parsed_event(run_dir):
    run, whole = open_run(run_dir), full_fold(run_dir)
    frame = lambda rows, columns: pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)
    pd.testing.assert_frame_equal(run.samples, frame(whole.samples, results.SAMPLE_COLUMNS).assign(
        selected=run.samples.selected, selection_reason=run.samples.selection_reason))
    assert len(run.samples) == sum(1 for e in read_events(run_dir / "events.jsonl") if e.type == "forward")
    assert set(run.samples.proposal_id.dropna()) == {"p1-1", "p1-2"}  # rows of a proposal's gate keep its id
    assert run.tables.curve == whole.curve and run.tables.proposals == whole.proposals
    assert run.tables.gradients == whole.gradients and run.tables.notices == whole.notices
    assert run.tables.sessions == whole.sessions  # the last event's time ends the session, forward or not
    assert run.tables.curves.steps == whole.curves.steps
    assert run.tables.curves.proposals == whole.curves.proposals


def test_runs_parses_no_per_sample_line_and_samples_parse_them_once(run_dir, tmp_path, monkeypatch):
    for k in range(3):
        shutil.copytree(run_dir, tmp_path / f"run-{k}")
    parses = Parses(monkeypatch)
    frame = runs(tmp_path)
    assert len(frame) == 3 and set(frame.status) == {"completed"}
    assert parses.types and not {"forward", "node"} & set(parses.types)

    parses.types.clear()
    run = open_run(tmp_path / "run-0")
    run.curve
    run.proposals
    assert "forward" not in parses.types
    samples = run.samples
    forwards = parses.types.count("forward")
    assert forwards == len(samples)
    run.samples
    assert parses.types.count("forward") == forwards  # folded once, not per access


def test_the_fold_is_incremental_each_line_is_parsed_at_most_once(run_dir, tmp_path, monkeypatch):
    lines = (run_dir / "events.jsonl").read_bytes().splitlines(keepends=True)
    folder = tmp_path / "live"
    shutil.copytree(run_dir, folder)
    log = folder / "events.jsonl"
    log.write_bytes(b"".join(lines[:len(lines) // 2]))
    parses = Parses(monkeypatch)
    run = open_run(folder)
    before = len(run.samples)
    with open(log, "ab") as f:  # the trainer appends; a line still being written waits for its end
        f.write(b"".join(lines[len(lines) // 2:]) + b'{"type": "node", "run_id": "x", "st')
    after = run.samples
    assert len(after) > before
    assert len(parses.types) <= len(lines)  # every line parsed at most once (many not at all)
    pd.testing.assert_frame_equal(after, open_run(run_dir).samples)


def test_a_forward_line_in_another_layout_is_still_read(run_dir, tmp_path):
    """Only the store's own layout is deferred; any other readable line is parsed as before."""
    folder = tmp_path / "other"
    shutil.copytree(run_dir, folder)
    log = folder / "events.jsonl"
    text = log.read_text(encoding="utf-8").replace('{"type": "forward", ', '{ "type": "forward", ')
    log.write_text(text, encoding="utf-8")
    pd.testing.assert_frame_equal(open_run(folder).samples, open_run(run_dir).samples)
    assert open_run(folder).wall_time_s == pytest.approx(open_run(run_dir).wall_time_s)


def test_report_is_built_from_the_one_fold_of_the_log(run_dir, monkeypatch):
    def no_second_read(self):
        raise AssertionError("the report read the whole log again")
    monkeypatch.setattr(results.Run, "events", no_second_read)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        html = render_report(open_run(run_dir))
    assert "Scores and cost" in html and "Proposals (2)" in html


def test_report_lists_each_steps_feedback_once_however_many_attempts(run_dir):
    run = open_run(run_dir)
    gradients = run.gradients
    assert len(run.proposals) == 2 and set(run.proposals.step) == {1}  # two attempts answered the same feedback
    html = render_report(open_run(run_dir))
    for text in gradients.text:
        assert html.count(text) <= 1, text
    assert "listed under <bdi class=\"name\">p1-1</bdi> above" in html
    from plotly.offline import get_plotlyjs
    body = len(html) - len(get_plotlyjs())
    texts = sum(len(t) for t in gradients.text) + sum(len(t or "") for t in run.proposals.new)
    # a bound proportional to the run: fixed parts (charts, tables) plus each text shown a few times
    assert body < 40_000 + 4 * texts + 2_000 * len(run.proposals), body
