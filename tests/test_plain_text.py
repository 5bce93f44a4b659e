"""Text shown as what it is (issue 20), without a browser: invisible controls spelled out, values
isolated in the report, `$...$` in DataFrames never typeset, every plotly label escaped, no "NaN" in
the report's notices, and files written with the mode a plain write gives them."""
import html
import os
import re
import stat

import pandas as pd
import pytest

from workbench.records.export import export_prompts
from workbench.records.frames import TextFrame
from workbench.llm.models import Models
from workbench.plain_text import html_name, html_text, show_controls
from workbench.records.report import render_report, write_report
from workbench.records.results import open_run, runs
from workbench.training.trainer import TrainConfig, Trainer
from workbench.records.charts import CurveData, cost_spec, score_spec

from hostile_text import DOLLARS, RLO, RLO_ID, RLO_SHOWN, ROLE, TASK, ZERO_WIDTH_NAME, train_hostile_run
from scripted_tasks import VAL, Example, Optimizer, Shout, backward, same_text, task


def test_invisible_controls_are_spelled_out_and_values_isolated():
    assert show_controls(RLO_ID) == RLO_SHOWN
    assert show_controls(ZERO_WIDTH_NAME) == "answer\u27e8U+200B\u27e9.instruction"
    every = "\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff"
    assert re.fullmatch(r"(\u27e8U\+[0-9A-F]{4}\u27e9){17}", show_controls(every))
    assert show_controls("Ελληνικά עברית") == "Ελληνικά עברית"  # letters of any script stay
    name = html_name(f"{RLO_ID}<b>")
    assert name.startswith('<bdi class="name">') and RLO not in name and "&lt;b&gt;" in name
    assert '<span class="ctl"' in name and "\u27e8U+202E\u27e9" in name
    assert html_text("<i>x</i>") == "<bdi>&lt;i&gt;x&lt;/i&gt;</bdi>"


# -- a run with hostile names: a sample id with an override, $...$ in replies, markup in role and task --

@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    return train_hostile_run(tmp_path_factory.mktemp("hostile"))


def test_the_report_isolates_values_and_shows_the_override_in_ids(hostile_run):
    page = render_report(open_run(hostile_run))
    assert RLO not in page  # every override is spelled out, never left to reorder the page
    assert f"<bdi class=\"name\">s6<span class=\"ctl\"" in page and "gnp.exe</bdi>" in page
    assert html.escape(TASK, quote=True) in page and TASK not in page
    assert html.escape(ROLE, quote=True) in page and ROLE not in page  # the usage table's role


def test_notices_show_a_dash_not_nan_in_missing_cells(tmp_path):
    def silent_optimizer(messages):
        return "I cannot help with that."  # no <PROPOSAL>: a no_proposal notice with no node and no sample
    trainer = Trainer(Shout(), [Example(f"tr-{w}", {"word": w}, w.upper(), {}) for w in ("river", "stone")], VAL,
                      [], same_text, Models.scripted(task, backward, silent_optimizer),
                      config=TrainConfig(max_steps=1, batch_size=2, concurrency=1), run_dir=tmp_path / "run")
    trainer.fit()
    notices = open_run(tmp_path / "run").notices
    assert (notices.type == "no_proposal").any() and notices.node_id.isna().any()
    section = re.search(r"<h2>Notices \(\d+\)</h2>(.*?)</section>", render_report(open_run(tmp_path / "run")), re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", section, re.S)
    assert cells and not [c for c in cells if c in ("NaN", "nan", "None", "")]
    assert "<td>–</td>" in section


def test_dataframes_display_dollars_as_text_without_touching_pandas_settings(hostile_run):
    run = open_run(hostile_run)
    frames = {"samples": run.samples, "gradients": run.gradients, "proposals": run.proposals, "curve": run.curve,
              "usage": run.usage, "notices": run.notices, "runs": runs(hostile_run.parent)}
    before = pd.get_option("display.html.use_mathjax")
    for name, frame in frames.items():
        assert isinstance(frame, pd.DataFrame) and isinstance(frame, TextFrame), name
        shown = frame._repr_html_()
        assert "tex2jax_ignore" in shown, name  # MathJax (JupyterLab's too) skips the table
    assert DOLLARS in "".join(run.samples.prediction)
    assert pd.get_option("display.html.use_mathjax") is before is True
    # slices, sorts and copies stay plain-text frames
    for derived in (run.samples[["sample_id", "prediction"]], run.samples.head(2), run.samples.copy(),
                    frames["runs"].sort_values("run_id"), run.samples[run.samples.score < 1]):
        assert isinstance(derived, TextFrame) and "tex2jax_ignore" in derived._repr_html_()
    assert "tex2jax_ignore" not in pd.DataFrame({"a": [DOLLARS]})._repr_html_()  # the user's own frames: theirs


def test_every_label_plotly_draws_is_escaped():
    events = [{"type": "run_started", "step": 0, "data": {}},
              {"type": "proposal", "step": 1, "data": {"proposal_id": "p1", "parameter": ZERO_WIDTH_NAME + ROLE}},
              {"type": "update", "step": 1, "data": {"proposal_id": "p1", "accepted": False, "reason": DOLLARS}},
              {"type": "step_finished", "step": 1, "data": {"train_score": 0.5, "best_val": 0.5, "usage": {
                  ROLE: {"calls": 2, "prompt_tokens": 10, "completion_tokens": 3}, f"%{{x}}{RLO}": {"calls": 1}}}}]
    data = CurveData.from_events(events)
    figures = [score_spec(data), cost_spec(data), cost_spec(data, {ROLE: (1.0, 2.0)})]
    labels = []
    for fig in figures:
        for trace in fig["data"]:
            labels += [trace.get("name", ""), trace.get("hovertemplate", "")]
            labels += [t for t in trace.get("text", []) if isinstance(t, str)]
            labels += [c for row in trace.get("customdata", []) for c in (row if isinstance(row, list) else [row])
                       if isinstance(c, str)]
        layout = fig["layout"]
        labels += [a["text"] for a in layout.get("annotations", [])]
        labels += [v["title"]["text"] for k, v in layout.items() if k.startswith(("xaxis", "yaxis"))]
    shown = " ".join(labels)
    assert "<a " not in shown and "<b>task" not in shown and RLO not in shown and "\u200b" not in shown
    names = {t["name"] for t in figures[1]["data"]}
    assert html.escape(ROLE, quote=False) in names and "%{x}\u27e8U+202E\u27e9" in names
    # a name with "%{x}" in it is not a placeholder: the hover template reads it from customdata
    role_trace = next(t for t in figures[1]["data"] if t["name"].startswith("%"))
    assert role_trace["hovertemplate"].startswith("%{customdata[2]}")


# -- file modes ---------------------------------------------------------------------------------------------

@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_reports_and_exports_get_the_mode_a_plain_write_gives(hostile_run, tmp_path, umask):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert mode(plain) == 0o644
    assert mode(write_report(open_run(hostile_run), tmp_path / "report.html")) == 0o644
    for suffix in ("json", "yaml", "md"):
        assert mode(export_prompts(hostile_run, tmp_path / f"prompts.{suffix}")) == 0o644
    umask(0o027)
    assert mode(write_report(open_run(hostile_run), tmp_path / "report-027.html")) == 0o640
    # a file that exists keeps its mode, as open(path, "w") would leave it
    os.chmod(tmp_path / "report.html", 0o600)
    assert mode(write_report(open_run(hostile_run), tmp_path / "report.html")) == 0o600
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_run_folder_files_get_the_same_mode(tmp_path, umask):
    trainer = Trainer(Shout(), [Example("tr-a", {"word": "apple"}, "APPLE", {})], VAL[:1], [], same_text,
                      Models.scripted(task, backward, Optimizer()),
                      config=TrainConfig(max_steps=1, batch_size=1, concurrency=1), run_dir=tmp_path / "run")
    trainer.fit()
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert {"config.json", "events.jsonl", "latest.json", "summary.json", "step-0000.json"} <= {p.name for p in files}
    assert {p.name: oct(mode(p)) for p in files if mode(p) != 0o644} == {}
