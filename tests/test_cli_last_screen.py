"""The demo's last screen: what was proposed, what each gate decided and why, and an honest verdict."""
import io

from workbench.cli.last_screen import print_next, print_story
from workbench.records.events import Event


class Folder:
    """A run folder's events, as RunStore.events() gives them."""

    def __init__(self, events, path="runs/demo-1"):
        self._events, self.path = events, path

    def events(self):
        return iter(self._events)


def proposal(pid, new, step=1, attempt=1):
    return Event("proposal", {"proposal_id": pid, "parameter": "count.instruction", "role": "instruction",
                              "old": "Count.", "new": new, "source": "optimizer", "gradient_summary": "",
                              "attempt": attempt, "group": None}, step=step)


def minibatch(pid, before, after, passed, step=1):
    return Event("minibatch", {"proposal_id": pid, "before": before, "after": after, "passed": passed,
                               "left_out": 0, "samples": ["a", "b"]}, step=step)


def update(pid, accepted, reason, step=1):
    return Event("update", {"proposal_id": pid, "parameter": "count.instruction", "accepted": accepted,
                            "value": "v", "reason": reason}, step=step)


def story(events, **kw):
    out = io.StringIO()
    counts = print_story(Folder(events), out, **kw)
    return out.getvalue(), counts


def test_rejected_proposals_are_said_to_be_rejected_with_each_gate_and_reason():
    text, counts = story([
        proposal("p1-1", "Count each object.\nTwice."),
        minibatch("p1-1", 0.0, 0.0, False),
        update("p1-1", False, "minibatch score stayed at 0.000 (a strict gain is required)"),
        proposal("p1-2", "List the objects, then add them up.", attempt=2),
        minibatch("p1-2", 0.0, 0.5, True),
        Event("validation", {"proposal_id": "p1-2", "score": 0.25, "best": 0.25, "passed": False,
                             "complete": True, "left_out": 0}, step=1),
        update("p1-2", False, "validation 0.250 does not beat best 0.250"),
    ], small_model=True)
    lines = text.splitlines()
    assert lines[1:4] == ["what happened",
                          "  step 1  p1-1  count.instruction (optimizer, attempt 1) proposed:",
                          "              Count each object. Twice."]  # one line, whitespace folded
    assert "              minibatch gate 0.000 -> 0.000 failed" in lines
    assert "              reverted: minibatch score stayed at 0.000 (a strict gain is required)" in lines
    assert "              minibatch gate 0.000 -> 0.500 passed" in lines
    assert "              validation gate 0.250 vs best 0.250 failed" in lines
    assert ("verdict     no proposal was kept: 2 proposed, 1 passed the minibatch gate but none beat the "
            "validation score; the prompts are unchanged") in lines
    assert "a 270M base model rarely writes a better prompt" in text
    assert counts == {"proposed": 2, "minibatch_passed": 1, "validated": 1, "kept": 0, "no_proposal": 0,
                      "disconnected": 0}


def test_a_kept_proposal_and_a_persons_decision_are_told():
    long_value = "Count every object. " * 20
    text, counts = story([
        proposal("p2-3", long_value, step=2),
        minibatch("p2-3", 0.0, 1.0, True, step=2),
        Event("decision", {"proposal_id": "p2-3", "action": "edit", "by": "person", "text": "x", "at": 0.0},
              step=2),
        Event("validation", {"proposal_id": "p2-3", "score": 1.0, "best": 0.0, "passed": True, "complete": True,
                             "left_out": 0}, step=2),
        update("p2-3", True, "validation 1.000 beats best 0.000", step=2),
    ], small_model=True)
    assert "              person chose to edit" in text
    assert "              KEPT: validation 1.000 beats best 0.000" in text
    assert "verdict     1 of 1 proposals kept: they beat the best validation score" in text
    assert "270M" not in text  # no excuse needed
    clipped = [line for line in text.splitlines() if line.startswith("              Count every")][0]
    assert clipped.endswith("...") and len(clipped.strip()) == 160


def test_no_usable_proposal_and_a_disconnected_parameter_are_said():
    text, counts = story([
        Event("disconnected", {"parameter": "count.format", "node_id": "count", "sample_id": "s1",
                               "reason": "plain str"}, step=1),
        Event("no_proposal", {"parameter": "count.instruction", "source": "optimizer",
                              "reason": "the reply echoed its prompt", "reply": "Instruction:\n Count. " * 20}, step=1),
    ])
    assert "  step 1  count.format gets no feedback: node count has no path to the loss" in text
    assert "  step 1  no usable proposal for count.instruction: the reply echoed its prompt" in text
    assert "              the reply was: Instruction: Count. Instruction: Count. " in text  # folded, clipped
    assert [len(line) for line in text.splitlines() if "the reply was" in line] == [14 + len("the reply was: ") + 100]
    assert "verdict     the optimizer never gave a usable proposal; the prompts are unchanged" in text


def test_where_to_look_next_names_the_run():
    out = io.StringIO()
    print_next(Folder([], path="runs/demo-7"), out)
    assert "workbench report runs/demo-7 -o report.html" in out.getvalue()
    assert "notebooks/01_quickstart.ipynb" in out.getvalue()


def test_a_resumed_run_s_forecast_line_says_it_compares_only_the_calls_since_the_resume():
    from workbench.cli.last_screen import forecast_lines
    error = {"backward": {"calls": {"least": 0, "expected": 6, "most": 18, "actual": 2, "error": -0.67, "inside": True}}}
    fresh = forecast_lines(error, {"backward": {"calls": 2}, "probe": {"calls": 1}})
    assert len(fresh) == 1 and "2 calls of 0 / 6 / 18" in fresh[0]
    resumed = forecast_lines(error, {"backward": {"calls": 4}})
    assert resumed[:1] == fresh and "also counts the 2 paid before it" in resumed[1]
