"""Every notebook in notebooks/ named NN_*.ipynb runs top to bottom, headless, in a fresh kernel.

The kernel is this interpreter (`sys.executable`), registered as a kernelspec in a temporary
JUPYTER_PATH, so the test does not depend on which kernels the machine has. Each notebook runs in its
own working directory under tmp_path (its `runs/` and exports land there, not in the repository), with
an empty response cache and no endpoint configured: 01 really runs on the embedded Gemma 3 270M server,
and the others on their scripted models. Executed outputs are only checked, never saved.

Checked after each run: the printed lines the text relies on (EXPECTED), that no warning or traceback
was printed into the outputs, and, for the scripted notebooks, that what the text says happened in the
run (which proposals were refused, carried or kept) is what the run's events record (NARRATIVE).
"""
import json
import sys
import time
from pathlib import Path

import nbformat
import pytest
from shared_data import hotpotqa_or_skip
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FOUND = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
KERNEL = "workbench-notebook-tests"
ENDPOINT_VARIABLES = ("WORKBENCH_BASE_URL", "WORKBENCH_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                      "WORKBENCH_TASK_MODEL", "WORKBENCH_BACKWARD_MODEL", "WORKBENCH_OPTIMIZER_MODEL")

# What each notebook must print or show. The scripted notebooks are deterministic, so their final
# scores are exact; 01 runs a tiny base model, so what it learned is checked on its events (NARRATIVE).
EXPECTED = {
    "01_quickstart": {"text": ["embedded server: LocalServer('gemma-3-270m'", "status: completed | steps: 4",
                               "sentiment: 16 train / 16 val / 24 test, seed 0",
                               "sentiment.demos (demos, trained)", "sentiment.instruction (instruction, frozen)",
                               "user      : Review: ", "baseline: val ", "final   : val ", "calls,", "tokens",
                               "what was learned", "answers shown, in order: none -> ", "went from wrong to right",
                               "test (never seen in training): ", "final prompts:\n  sentiment.instruction: "],
                      "mime": ["image/svg+xml", "application/vnd.jupyter.widget-view+json"]},
    "02_classification": {"text": ["status: completed | steps: 4",
                                   "reverted: minibatch score stayed at 0.000 (a strict gain is required)",
                                   "step 1 back-propagates: qt-020 (NUM, failed), qt-128 (NUM, failed)",
                                   "qt-020 (NUM, carried), qt-128 (NUM, carried)",
                                   "minibatch gate: 0.00 -> 0.25 passed",
                                   "1.00 -> 1.00 passed (all passed already: a tie is enough)",
                                   "does not beat the current prompt's 1.000 on the same 4 sample(s)", "not run on any sample",
                                   "baseline: val 0.000  test 0.000", "final   : val 1.000  test 1.000",
                                   "step 2 (demos, val 0.75)", "step 4 (optimizer, val 1.00)"],
                          "mime": ["application/vnd.jupyter.widget-view+json"]},
    "03_multihop_rag": {"text": ["query (call 1): Hop 1 searched", "query#2 (call 2): In query#2 the query",
                                 "retrieve#2 -> query#2] (value)\n    (relayed through function `retrieve#2`)",
                                 "[query#2 -> retrieve] (value)\n    These hop-1 passages",
                                 "[retrieve -> query] (value)\n    (relayed through function `retrieve`) These hop-1",
                                 "final   : val 1.000  test 1.000", "query#2  -> 'ostervale'"],
                        "mime": ["image/svg+xml"]},
    "04_agent": {"text": ["step#2  (step 2): At step 2", "lookup -> step: (relayed through function `lookup`)",
                          "final   : val 1.000  test 1.000", "Final Answer: 48,000", "lookup#2", "step#3"],
                 "mime": ["image/svg+xml"]},
    "05_how_gradients_flow": {"text": ["node retrieve (function)", "### Parameter: query.instruction",
                                       "retrieve -> query: (relayed through function `retrieve`)",
                                       "validation: 1.00 vs best 0.00: keep", "prediction: 1791 | target: 1791",
                                       "5 gradients, 3 backward-engine calls",
                                       "minibatch gate: passed (minibatch score rose from 0.000 to 1.000)",
                                       "baseline val 0.00 -> final val 1.00"],
                              "mime": ["image/svg+xml"]},
    "07_hotpotqa": {"text": ["hotpotqa: 8 train / 8 val / 8 test, seed 0, from shared data hotpotqa/dev_distractor_500.jsonl",
                             "own 10 paragraphs : a gold paragraph in the top 2 for 95.6% of 500 questions",
                             "all pooled        : a gold paragraph in the top 2 for 87.2% of 500 questions",
                             "status: completed | steps: 2", "baseline: val 0.308  test 0.208",
                             "final   : val 0.500  test 0.500", "5ae1f4cb554299234fd0436d 276,170 inhabitants",
                             "wrote report.html", "hotpotqa completed"],
                    "mime": ["text/html"]},
    "08_teaching_person_feedback": {"text": [
        "12 train / 8 val / 4 test tickets", "alone: completed", "accepted: True | about: sample t04 | pending: True",
        "best val             alone    0.75   taught     1.0", "first step at best   alone       0   taught       1",
        "optimizer calls      alone       9   taught       1", "kept                 alone       0   taught       1",
        "The reviewer of this run says: In this shop anything under warranty is a repair",
        "feedback refused: 't99' is not a training sample of this run",
        "proposed: Anything under warranty is a repair, even when the customer asks for their money back. Otherwise",
        "Their reason: Put the warranty rule first: it overrides the others.", "reviewed: completed"],
        "mime": ["text/html"]},
    "06_export_and_use": {"text": ["exports/tuned_prompts.md", '"format": "workbench-prompts/1"',
                                   "1.000 after", "reply   : Answer: NUM", "workbench imported: False",
                                   "val 0.250 -> 0.583, test 0.583 -> 1.000"],
                          "mime": ["text/markdown"]},
}


@pytest.fixture(scope="session")
def jupyter_dirs(tmp_path_factory):
    """A kernelspec for this interpreter, and a response cache shared by the notebooks (empty at first)."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "workbench (tests)", "language": "python"}))
    return root, tmp_path_factory.mktemp("llm-cache")


@pytest.fixture
def notebook_env(jupyter_dirs, monkeypatch):
    """The kernel inherits this environment: our kernelspec, the test cache, and no endpoint configured."""
    root, cache = jupyter_dirs
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(cache))
    for name in ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def only(parameters):
    """Proposals were made for these parameters and no other (the text says the scripted optimizer
    proposes nothing for the rest)."""
    def check(events):
        made = {e["data"]["parameter"] for e in events if e["type"] == "proposal" and e["data"]["source"] == "optimizer"}
        return [] if made == set(parameters) else [f"optimizer proposals for {sorted(made)}, not {sorted(parameters)}"]
    return check


def kept(events):
    return [(e["step"], e["data"]["parameter"]) for e in events if e["type"] == "update" and e["data"]["accepted"]]


def refused_on_minibatch(events, step):
    return sorted(e["data"]["proposal_id"] for e in events
                  if e["type"] == "minibatch" and e["step"] == step and not e["data"]["passed"])


def selected(events, step):
    return [s for e in events if e["type"] == "selection" and e["step"] == step
            for s in e["data"]["samples"] if s["selected"]]


def learned_on_the_embedded_model(ev):
    """01: nobody clicks in a headless run, so every decision is the timeout's; a kept change of the
    demos raised validation (the curves rise), and only the demos were proposed."""
    finished = [e["data"] for e in ev if e["type"] == "run_finished"]
    return [
        *only_demos(ev),
        *([] if {e["data"]["by"] for e in ev if e["type"] == "decision"} <= {"timeout"} else ["a decision not by timeout"]),
        *([] if kept(ev) else ["nothing was kept"]),
        *([] if finished and finished[-1]["final"]["val"] > finished[-1]["baseline"]["val"]
          else ["validation did not rise"])]


def only_demos(ev):
    made = {e["data"]["parameter"] for e in ev if e["type"] == "proposal"}
    return [] if made <= {"sentiment.demos"} else [f"proposals for {sorted(made)}"]


# What the narrative says happened in the run, checked on the run's own events (runs/*/events.jsonl).
# Each check returns the claims that do not hold.
NARRATIVE = {
    "01_quickstart": learned_on_the_embedded_model,
    # "Step 1: two good proposals, both refused" on the minibatch; the format is kept in step 2, with
    # step 1's failures carried over; demos and two definitions follow.
    "02_classification": lambda ev: [
        *([] if refused_on_minibatch(ev, 1) == ["p1-1", "p1-2"] else [f"step 1 refused {refused_on_minibatch(ev, 1)}"]),
        *([] if sum(s["reason"].startswith("carried") for s in selected(ev, 2)) == 2 else ["step 2 carried no samples"]),
        *([] if kept(ev) == [(2, "classify.output_format"), (2, "classify.demos"), (3, "classify.instruction"),
                             (4, "classify.instruction")] else [f"kept {kept(ev)}"])],
    "03_multihop_rag": only(["query.instruction"]),
    "04_agent": only(["step.instruction"]),
    "05_how_gradients_flow": only(["query.instruction"]),
    # only the instruction is proposed; DESC samples fail in step 3 "over the cap", so DESC is never learnt
    "06_export_and_use": lambda ev: [
        *only(["classify.instruction"])(ev),
        *([] if any(s["reason"].startswith("failed, but over the cap") for e in ev if e["type"] == "selection"
                    and e["step"] == 3 for s in e["data"]["samples"]) else ["no failure over the cap in step 3"])],
    # step 1's proposal is refused by the minibatch gate (its samples' answers were never retrieved);
    # the same proposal is kept in step 2, on the carried samples and a wordy answer
    "07_hotpotqa": lambda ev: [
        *only(["answer.instruction"])(ev),
        *([] if refused_on_minibatch(ev, 1) == ["p1-1"] else [f"step 1 refused {refused_on_minibatch(ev, 1)}"]),
        *([] if kept(ev) == [(2, "answer.instruction")] else [f"kept {kept(ev)}"])],
    # alone: every rewording refused, nothing kept; reviewed (the person rejected the first proposal with
    # a reason) and taught: the warranty rule kept in step 1; the person's feedback used in step 1
    "08_teaching_person_feedback": lambda ev: [
        *([] if kept(ev) == [(1, "route.instruction"), (1, "route.instruction")] else [f"kept {kept(ev)}"]),
        *([] if [e["data"]["reason"] for e in ev if e["type"] == "decision" and e["data"]["action"] == "reject"]
          == ["Put the warranty rule first: it overrides the others."] else ["no reject with its reason"]),
        *([] if sorted(e["step"] for e in ev if e["type"] == "feedback_used") == [1, 1] else ["feedback not used in step 1"])],
}


def run_events(runs_dir):
    return [json.loads(line) for path in sorted(Path(runs_dir).glob("*/events.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


def stderr_of(nb):
    return "".join(out.text for cell in nb.cells for out in cell.get("outputs", [])
                   if out.output_type == "stream" and out.name == "stderr")


def outputs_of(nb):
    """All stream and text outputs joined, and the set of MIME types displayed."""
    texts, mimes = [], set()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                texts.append(out.text)
            elif out.output_type in ("display_data", "execute_result"):
                mimes.update(out.data)
                texts.append(str(out.data.get("text/plain", "")))
    return "\n".join(texts), mimes


def test_notebooks_exist_and_are_committed_without_outputs():
    assert [p.stem for p in FOUND] == sorted(EXPECTED)
    for path in FOUND:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not dirty, f"{path.name}: cells {dirty} hold outputs; clear them before committing"
        first = nb.cells[0]
        assert first.cell_type == "markdown" and "model" in first.source.lower()
        assert "WORKBENCH_BASE_URL" in first.source  # says how to use another endpoint


def notebook_param(path):
    if path.stem.startswith("01_"):  # the embedded model: slow, but it runs everywhere, so no skip
        return pytest.param(path, id=path.stem, marks=[pytest.mark.local_model, pytest.mark.timeout(2700)])
    return pytest.param(path, id=path.stem)


@pytest.mark.parametrize("path", [notebook_param(p) for p in FOUND])
def test_notebook_runs_headless(path, notebook_env, tmp_path):
    if "hotpotqa" in path.stem:
        hotpotqa_or_skip()
    nb = nbformat.read(path, as_version=4)
    before = sorted(p.name for p in NOTEBOOKS.iterdir())
    started = time.monotonic()
    # timeout is per cell: generous, because the 270M model slows down a lot on busy cores
    NotebookClient(nb, kernel_name=KERNEL, timeout=1500, allow_errors=False,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"{path.name}: executed in {time.monotonic() - started:.1f} s")
    text, mimes = outputs_of(nb)
    expected = EXPECTED[path.stem]
    missing = [s for s in expected["text"] if s not in text]
    assert not missing, f"{path.name}: outputs lack {missing}"
    assert set(expected["mime"]) <= mimes, f"{path.name}: displayed only {sorted(mimes)}"
    assert list((tmp_path / "runs").iterdir()), "the run folder should be under the notebook's working directory"
    # no warnings or tracebacks printed into the outputs; the scripted notebooks print only progress lines
    stderr = stderr_of(nb)
    assert not any(w in stderr for w in ("Warning", "Traceback")), f"{path.name}: stderr shows\n{stderr}"
    if not path.stem.startswith("01_"):
        stray = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("[step ")]
        assert not stray, f"{path.name}: stderr lines that are not progress lines: {stray}"
    wrong = NARRATIVE.get(path.stem, lambda events: [])(run_events(tmp_path / "runs"))
    assert not wrong, f"{path.name}: the narrative's claims do not hold: {wrong}"
    assert sorted(p.name for p in NOTEBOOKS.iterdir()) == before, "a notebook wrote into notebooks/"
