"""The HTML report: one self-contained file (no fetches when opened, checked in real Chromium), run
text escaped (an `<img onerror>` / `<script>` payload in a prompt, a reply and a feedback), charts,
final prompts, every proposal as a grouped diff with its gradients and decision, usage."""
import concurrent.futures
import os
import re
from pathlib import Path

import pytest

from workbench import LLMCall, Parameter, Pipeline
from workbench.llm.models import Models
from workbench.redact import forget_secrets, register_secret
from workbench.records.report import render_report, write_report
from workbench.records.results import open_run
from workbench.training.trainer import TrainConfig, Trainer

from scripted_tasks import TEST, TRAIN, VAL, same_text, task

IMG = '<img src=x onerror="window.__xss=1">'
SCRIPT = "</script><script>window.__xss=2</script>"
START = f"Repeat the word. {IMG}"
GOOD = f"Repeat the word in UPPERCASE letters. {SCRIPT}"


class Shout(Pipeline):
    def __init__(self):
        self.instruction = Parameter("shout.instruction", START, description=f"how to write the word {IMG}")
        self.node = LLMCall("shout", "{{instruction}}\nWord: {{word}}", [self.instruction])

    def forward(self, word):
        return self.node(word=word)


def backward(messages):
    return f"The output must be in capital letters. {IMG} {SCRIPT}"


def optimizer(messages):
    return f"<PROPOSAL>{GOOD}</PROPOSAL>"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, optimizer),
                      config=TrainConfig(max_steps=2, batch_size=4, concurrency=2), run_dir=tmp / "run",
                      task="shout <b>bold</b>")
    trainer.fit()
    return tmp / "run"


def test_report_holds_charts_prompts_proposals_and_usage(run_dir, tmp_path):
    out = write_report(open_run(run_dir), tmp_path / "report.html")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count('class="plotly-graph-div"') == 2
    assert "Final prompts" in page and "Proposals (1)" in page and "per role and step" in page
    # the final prompt, escaped, and a grouped diff: the rewritten part is one removal and one addition
    assert "Repeat the word in UPPERCASE letters. &lt;/script&gt;&lt;script&gt;window.__xss=2&lt;/script&gt;" in page
    diff = re.search(r'<div class="diff">(.*?)</div>', page, re.S).group(1)
    assert diff.count("<del>") == 1 and diff.count("<ins>") == 1
    assert "accept by policy" in page and "kept" in page and "0.000 → 1.000" in page
    assert "The output must be in capital letters." in page  # the gradients behind the proposal
    assert "shout &lt;b&gt;bold&lt;/b&gt;" in page  # even the task name is text


def test_no_payload_survives_unescaped(run_dir):
    page = render_report(open_run(run_dir))
    body = page[page.index("</head>"):]
    assert IMG not in page and SCRIPT not in page
    assert "<script>window.__xss" not in page and "onerror=\"window" not in page
    # the only script elements are plotly.js (in the head) and one per chart that draws it
    assert len(re.findall(r"<script", body)) == 2 and len(re.findall(r"<script", page)) == 3
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)  # nothing to fetch


def test_notices_are_listed_escaped(tmp_path):
    from workbench.records.events import Event
    from workbench.records.store import RunStore
    folder = tmp_path / "run"
    folder.mkdir()
    store = RunStore(folder)
    store.on_event(Event("run_started", {"run_id": "run", "config": {}, "parameters": [], "splits": {},
                                         "resumed_from": None}, "run", 0, 1.0))
    store.on_event(Event("skipped", {"stage": "optimizer", "parameter": "a", "node_id": None, "sample_id": None,
                                     "error": f"LLMCallError: {IMG}"}, "run", 1, 2.0))
    page = render_report(open_run(folder))
    assert "Notices (1)" in page and IMG not in page and "LLMCallError: &lt;img" in page


def test_report_from_a_trainer_and_from_run_report(run_dir, tmp_path):
    run = open_run(run_dir)
    path = run.report(tmp_path / "nested" / "r.html")
    assert path.is_file() and "Workbench run run" in path.read_text(encoding="utf-8")


def test_registered_secrets_are_masked(tmp_path):
    secret = "sk-report-secret-123456"
    register_secret(secret)
    try:
        class Leaky(Shout):
            def __init__(self):
                super().__init__()
                self.instruction.value = f"Repeat the word. key={secret}"
        trainer = Trainer(Leaky(), TRAIN[:4], VAL[:2], [], same_text, Models.scripted(task, backward, optimizer),
                          config=TrainConfig(max_steps=1, batch_size=4, concurrency=1), run_dir=tmp_path / "run")
        trainer.fit()
        page = render_report(open_run(trainer))
        assert secret not in page and "&lt;redacted&gt;" in page
    finally:
        forget_secrets()


CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")


@pytest.mark.browser
def test_report_opens_offline_in_chromium_without_running_payloads(run_dir, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run scripts/setup.sh (it installs it)")
    out = write_report(open_run(run_dir), tmp_path / "report.html")
    requests, errors, seen = [], [], {}

    def look() -> None:  # in a thread of its own: an earlier test (nbclient) may leave an asyncio loop running here
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
            page.goto(out.resolve().as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=20000)
            seen["charts"] = page.locator(".js-plotly-plot").count()
            seen["xss"] = page.evaluate("window.__xss")
            seen["markers"] = page.locator(".js-plotly-plot .scatterlayer .point").count()
            page.locator("details summary").first.click()
            seen["diff_visible"] = page.locator("details ins").first.is_visible()
            browser.close()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(look).result()
    charts, xss, markers, diff_visible = seen["charts"], seen["xss"], seen["markers"], seen["diff_visible"]
    assert requests == [out.resolve().as_uri()], f"the report fetched {requests[1:]}"
    assert charts == 2 and markers > 0 and diff_visible
    assert xss is None and not errors
