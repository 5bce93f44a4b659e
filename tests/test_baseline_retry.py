"""An outage during the baseline: a resume retries the errored samples, so before and after compare
the same sets; samples that still error are said so (the eval event, the summary, the last screen)."""
import re

import pytest

from workbench import Models, TrainConfig, Trainer
from workbench.records.results import open_run
from workbench.records.store import RunStore

from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task

DOWN_FOR = {"forest", "window"}  # two of the four test words
DOWN_FOR_IDS = [f"te-{w}" for w in DOWN_FOR]


class Outage:
    """The task model, with the endpoint unable to answer for some words while `down`."""
    def __init__(self):
        self.down = True
        self.calls = 0

    def __call__(self, messages):
        word = re.search(r"Word: (\w+)", messages[-1]["content"]).group(1)
        if self.down and word in DOWN_FOR:
            raise ConnectionError("the endpoint is down")
        self.calls += 1
        return task(messages)


def models(outage):
    """Scripted models; the task model named, so the evaluation memo knows it again after a resume (as an endpoint's)."""
    built = Models.scripted(outage, backward, Optimizer())
    built.task.identity = "outage-task-model"
    return built


def first_run(tmp_path, outage):
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models(outage),
                      run_dir=tmp_path / "run", config=TrainConfig(max_steps=1, batch_size=4, epochs=2))
    return trainer.fit()


def resume(tmp_path, outage):
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models(outage),
                      run_dir=tmp_path / "run", resume=True, config=TrainConfig(max_steps=2, batch_size=4, epochs=2))
    return trainer.fit()


def baseline_evals(tmp_path, split):
    return [e.data for e in RunStore(tmp_path / "run").events()
            if e.type == "eval" and e.data["phase"] == "baseline" and e.data["split"] == split]


def test_a_resume_retries_the_baseline_samples_an_outage_errored(tmp_path):
    outage = Outage()
    first = first_run(tmp_path, outage)
    assert first.baseline_errored == {"test": 2} and first.baseline["test"] == 0.0  # on 2 of 4 samples
    outage.down, outage.calls = False, 0
    summary = resume(tmp_path, outage)
    assert summary.baseline_errored == {}
    # the baseline test is now on all four samples, as the final test is
    assert baseline_evals(tmp_path, "test")[-1] == {**baseline_evals(tmp_path, "test")[-1], "n": 4, "errored": 0}
    samples = open_run(tmp_path / "run").samples
    baseline = samples[(samples.phase == "baseline") & (samples.split == "test")]
    retried = baseline.iloc[len(TEST):]  # after the first pass's four rows
    assert sorted(retried.sample_id) == sorted(DOWN_FOR_IDS) and set(retried.step) == {0}  # only those, paid once
    scored = baseline[baseline.status != "errored"]
    assert sorted(scored.sample_id) == sorted(e.id for e in TEST)
    assert scored.score.mean() == pytest.approx(summary.baseline["test"])
    final = samples[samples.phase == "final"]
    assert sorted(final.sample_id) == sorted(scored.sample_id)  # before and after: the same set
    assert not any(RunStore(tmp_path / "run").latest_checkpoint().get("baseline_errored", {}).values())


def test_samples_that_still_error_are_said_so(tmp_path, capsys):
    outage = Outage()
    first_run(tmp_path, outage)
    summary = resume(tmp_path, outage)  # still down
    assert summary.baseline_errored == {"test": 2}
    assert baseline_evals(tmp_path, "test")[-1]["errored"] == 2
    assert RunStore(tmp_path / "run").summary()["baseline_errored"] == {"test": 2}
    from workbench.cli.last_screen import print_report
    print_report(RunStore(tmp_path / "run"), "data", [], 1.0)
    assert "baseline without 2 samples the endpoint could not answer" in capsys.readouterr().out


def test_a_run_without_errors_pays_nothing_more_on_resume(tmp_path):
    outage = Outage()
    outage.down = False
    first_run(tmp_path, outage)
    evals = len(baseline_evals(tmp_path, "test"))
    resume(tmp_path, outage)
    assert len(baseline_evals(tmp_path, "test")) == evals  # nothing errored, nothing retried
