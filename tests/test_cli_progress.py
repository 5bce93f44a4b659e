"""workbench.records.progress: plain lines when stderr is not a terminal, a tqdm bar when it is, notable events
always on a line of their own, secrets masked, and attach_progress on a real (scripted) training run."""
import io

from workbench.records.events import Event
from workbench.records.progress import Progress, attach_progress, describe_event
from workbench.redact import forget_secrets, register_secret


class Terminal(io.StringIO):
    def isatty(self):
        return True


def forward(i, split="val", phase="baseline"):
    return Event("forward", {"split": split, "phase": phase, "summary": {"sample_id": f"s{i}"}, "graph": None})


NOTABLE_EVENTS = [
    Event("disconnected", {"parameter": "shout.instruction", "node_id": "shout", "sample_id": "s1",
                           "reason": "the output became a plain str"}, step=1),
    Event("skipped", {"stage": "backward", "parameter": "shout.instruction", "node_id": "shout", "sample_id": "s1",
                      "error": "LLM call to http://x/v1 failed: HTTP 500"}, step=1),
    Event("no_proposal", {"parameter": "shout.instruction", "source": "optimizer", "reason": "the reply echoed the prompt",
                          "reply": "..."}, step=1),
    Event("endpoint_probe", {"role": "task", "base_url": "http://127.0.0.1:8080/v1", "model": "gemma",
                             "system_messages": "dropped", "fold_system": True, "source": "probe"}),
]


def test_without_a_terminal_a_long_baseline_prints_lines_while_it_runs():
    out, err = io.StringIO(), io.StringIO()
    progress = Progress(2, {"train": 8, "val": 8, "test": 30}, 4, out=out, err=err)
    assert progress.mode == "lines"
    progress(Event("run_started", {"run_id": "r1", "splits": {"train": 8, "val": 8, "test": 30},
                                   "resumed_from": None}))
    for i in range(8):
        progress(forward(i))
    progress(Event("eval", {"split": "val", "phase": "baseline", "score": 0.25, "n": 8, "errored": 0}))
    for i in range(30):
        progress(forward(i, split="test"))
    lines = err.getvalue().splitlines()
    assert lines[0] == "[step 0/2] run r1 started: 8 train / 8 val / 30 test"
    # every sample of a small split, then the evaluation's own line (not a redundant 8/8)
    assert lines[1:9] == [f"[step 0/2] baseline val: {i}/8 samples" for i in range(1, 8)] + [
        "[step 0/2] baseline val score 0.250 on 8 samples"]
    # a larger split: about every tenth
    assert lines[9:] == [f"[step 0/2] baseline test: {i}/30 samples" for i in range(3, 30, 3)]
    assert out.getvalue() == ""


def test_step_lines_go_to_stdout_and_the_rest_to_stderr():
    out, err = io.StringIO(), io.StringIO()
    progress = Progress(3, {"train": 4, "val": 4, "test": 4}, 2, out=out, err=err)
    progress(Event("step_finished", {"epoch": 0, "train_score": 0.5, "val_score": 0.75, "best_val": 0.75,
                                     "accepted": ["p1-1"], "rejected": [],
                                     "usage": {"task": {"calls": 4, "prompt_tokens": 100, "completion_tokens": 20}}},
                   step=1))
    assert out.getvalue() == ("step 1/3: train 0.500 | best val 0.750 | accepted p1-1 | rejected - | "
                              "4 calls, 120 tokens so far\n")
    assert err.getvalue() == ""


def test_notable_events_are_one_line_each_in_both_modes():
    for err in (io.StringIO(), Terminal()):
        progress = Progress(2, {"train": 4, "val": 4, "test": 4}, 2, out=io.StringIO(), err=err)
        for event in NOTABLE_EVENTS:
            progress(event)
        progress.close()
        text = err.getvalue()
        assert ("no feedback can reach shout.instruction: its node shout has no path to the loss "
                "(the output became a plain str)") in text
        assert "skipped a backward call for shout.instruction after retries: LLM call to http://x/v1 failed" in text
        assert "no usable proposal for shout.instruction: the reply echoed the prompt" in text
        assert ("gemma at http://127.0.0.1:8080/v1: system messages are folded into the user turn "
                "(it drops them)") in text


def test_an_endpoint_that_keeps_system_messages_is_not_worth_a_line():
    kept = {"role": "task", "base_url": "u", "model": "m", "system_messages": "kept", "fold_system": False,
            "source": "probe"}
    assert describe_event("endpoint_probe", kept) is None
    forced = {**kept, "fold_system": True, "source": "config"}
    assert describe_event("endpoint_probe", forced).endswith("(set by config)")


def test_on_a_terminal_it_draws_a_tqdm_bar_and_lines_do_not_tear_it():
    err = Terminal()
    progress = Progress(2, {"train": 4, "val": 5, "test": 4}, 2, out=io.StringIO(), err=err)
    assert progress.mode == "bar"
    for i in range(3):
        progress(forward(i))
    progress(NOTABLE_EVENTS[0])
    text = err.getvalue()
    assert "baseline val" in text and "3/5" in text and "\r" in text
    assert "[step 1/2] no feedback can reach shout.instruction" in text
    progress(Event("run_finished", {"status": "completed"}))
    assert progress.bar is None  # closed, so the report starts on a clean line


def test_secrets_are_masked_in_progress_lines():
    register_secret("sk-progress-secret-123")
    try:
        err = io.StringIO()
        progress = Progress(1, {}, 1, out=io.StringIO(), err=err)
        progress(Event("skipped", {"stage": "optimizer", "parameter": "p", "node_id": "n", "sample_id": None,
                                   "error": "401: bad key sk-progress-secret-123"}, step=1))
        assert "sk-progress-secret-123" not in err.getvalue() and "<redacted>" in err.getvalue()
    finally:
        forget_secrets()


def test_quiet_mode_prints_nothing_but_results():
    out, err = io.StringIO(), Terminal()
    progress = Progress(1, {"val": 2}, 1, out=out, err=err, mode="off")
    for event in [forward(0), *NOTABLE_EVENTS]:
        progress(event)
    assert err.getvalue() == "" and progress.bar is None


def test_attach_progress_follows_a_real_training_run_and_detaches():
    import cli_task
    from workbench.llm import Models
    from scripted_tasks import same_text
    from workbench.training.trainer import TrainConfig, Trainer

    train, val = cli_task.sample(4, 0), cli_task.sample(6, 0)
    models = Models.scripted(cli_task.task_reply, cli_task.backward_reply, cli_task.optimizer_reply)
    trainer = Trainer(cli_task.Shout(), train, val, [], same_text, models,
                      config=TrainConfig(max_steps=1, batch_size=2, concurrency=1))
    out, err = io.StringIO(), Terminal()
    detach = attach_progress(trainer, out=out, err=err)
    trainer.fit()
    detach()
    assert "step 1/1: train" in out.getvalue()
    assert "baseline val" in err.getvalue() and "6/6" in err.getvalue()
    seen = len(err.getvalue())
    trainer.bus.emit(NOTABLE_EVENTS[0])  # detached: nothing more is drawn
    assert len(err.getvalue()) == seen


def test_a_notable_line_is_said_once_per_step_however_many_roles_or_samples_repeat_it():
    err = io.StringIO()
    progress = Progress(2, {}, 1, out=io.StringIO(), err=err)
    probe = NOTABLE_EVENTS[3]
    for role in ("task", "backward", "optimizer"):
        progress(Event("endpoint_probe", {**probe.data, "role": role}))
    for sample in ("s1", "s2", "s3"):
        progress(Event("disconnected", {**NOTABLE_EVENTS[0].data, "sample_id": sample}, step=1))
    progress(Event("disconnected", NOTABLE_EVENTS[0].data, step=2))
    lines = err.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("[step 0/2] gemma at http://127.0.0.1:8080/v1: system messages are folded")
    assert lines[1].startswith("[step 1/2] no feedback can reach shout.instruction")
    assert lines[2].startswith("[step 2/2] no feedback can reach shout.instruction")


def test_a_real_terminal_gets_a_bar_unless_it_reports_no_size():
    import fcntl
    import os
    import struct
    import termios

    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w") as terminal:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            assert Progress(1, {}, 1, err=terminal).mode == "bar"
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))  # tqdm would draw nothing
            assert Progress(1, {}, 1, err=terminal).mode == "lines"
    finally:
        os.close(master)


def test_each_evaluation_counts_from_one_even_when_the_next_is_of_the_same_kind():
    err = io.StringIO()
    progress = Progress(1, {"train": 4, "val": 4}, 3, out=io.StringIO(), err=err)
    for pid in ("p1-1", "p1-2"):
        for i in range(3):
            progress(forward(i, split="minibatch", phase="proposal"))
        progress(Event("eval", {"split": "minibatch", "phase": "proposal", "score": 0.0, "n": 3, "errored": 0,
                                "proposal_id": pid}, step=1))
    counted = [line for line in err.getvalue().splitlines() if "samples" in line and "score" not in line]
    assert counted == ["[step 0/1] proposal minibatch: 1/3 samples", "[step 0/1] proposal minibatch: 2/3 samples"] * 2


def test_the_minibatch_gate_counts_the_back_propagated_samples_carried_ones_included():
    err = io.StringIO()
    progress = Progress(2, {"train": 8, "val": 4}, 2, out=io.StringIO(), err=err)
    progress(Event("step_started", {"epoch": 0, "batch": ["a", "b"]}, step=2))
    progress(Event("backward_done", {"samples": ["a", "b", "carried"], "gradients": 3}, step=2))
    for i in range(3):
        progress(forward(i, split="minibatch", phase="proposal"))
    counted = [line for line in err.getvalue().splitlines() if line.endswith("samples") and "minibatch" in line]
    assert counted == ["[step 0/2] proposal minibatch: 1/3 samples", "[step 0/2] proposal minibatch: 2/3 samples"]
