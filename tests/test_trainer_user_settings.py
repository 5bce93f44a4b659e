"""A user's own pipelines and settings at their edges, through the Trainer (audit 2).

Each test names the defect it guards against; the scripted models answer from the prompt alone.
"""
import warnings

import pytest

from workbench import LLMCall, Parameter, Pipeline, tool
from workbench.tasks.datasets import Example
from workbench.errors import ConfigError
from workbench.llm.models import Models
from workbench.training.trainer import TrainConfig, Trainer

from scripted_tasks import GOOD, TRAIN, Optimizer, Shout, backward, task


def test_a_candidate_that_cannot_beat_a_perfect_validation_is_not_run_on_it(tmp_path):
    """A validation set of one sample that the baseline already gets right: under the strict tie rule
    no candidate can beat 1.0, so running the candidate on it only costs calls. It used to run anyway
    (early stopping was checked only after a first chunk), and its verdict never said that it could not have won."""
    val = [Example("va-lemon", {"word": "lemon"}, "lemon", {})]  # lower case: the initial prompt passes
    models = Models.scripted(task, backward, Optimizer())
    trainer = Trainer(Shout(), TRAIN, val, [], lambda p, t: float(str(p).strip() == t), models,
                      config=TrainConfig(max_steps=1, batch_size=4, concurrency=2), run_dir=tmp_path / "run",
                      progress=False)
    events = []
    trainer.bus.subscribe(events.append)
    trainer.fit()
    minibatch = [e.data for e in events if e.type == "minibatch" and e.data["passed"]]
    assert minibatch, "the good proposal passes the minibatch gate, so it reaches validation"
    candidate_on_val = [c for c in models.task.calls if GOOD in c[-1]["content"] and "Word: lemon" in c[-1]["content"]]
    assert candidate_on_val == []
    validation = next(e.data for e in events if e.type == "validation")
    assert validation["passed"] is False and validation["complete"] is False and validation["best"] == 1.0
    reason = next(e.data["reason"] for e in events if e.type == "update" and e.data["proposal_id"] == validation["proposal_id"])
    assert reason.startswith("not validated: even every validation sample right (1.000) could not beat best 1.000")
    assert "not run on any sample" in reason  # no score is given for a candidate that never ran


class Suffixed(Pipeline):
    """The suffix is a Parameter, but a tool reads it through `.value`: no LLM node ever uses it."""

    def __init__(self):
        self.instruction = Parameter("shout.instruction", "Repeat the word.", description="how to write the word")
        self.suffix = Parameter("post.suffix", "!", description="what ends the answer")
        self.node = LLMCall("shout", "{{instruction}}\nWord: {{word}}", [self.instruction])
        self.finish = tool(lambda text: text + self.suffix.value, name="finish")

    def forward(self, word):
        return self.finish(self.node(word=word))


def test_a_trainable_parameter_no_llm_node_uses_is_named_before_training(tmp_path):
    """Such a parameter never got a gradient, a proposal or a `disconnected` event (that needs a
    node): nothing in the run said that it could never change."""
    models = Models.scripted(task, backward, Optimizer())
    trainer = Trainer(Suffixed(), TRAIN, TRAIN[:2], [], lambda p, t: float(str(p).strip() == t), models,
                      config=TrainConfig(max_steps=1, batch_size=4), run_dir=tmp_path / "run", progress=False)
    with pytest.warns(UserWarning, match=r"\['post\.suffix'\] are in no LLMCall") as caught:
        trainer.fit()
    assert not any("shout.instruction" in str(w.message) for w in caught)


def test_raising_max_steps_to_train_further_says_when_the_epochs_are_used_up(tmp_path):
    """The README says: raise trainer.config.max_steps and call fit() again to train further. With 8
    training samples at batch 4 the one default epoch is 2 steps, so the second fit() ran no step at
    all and ended 'completed', without a word about `epochs`."""
    models = Models.scripted(task, backward, Optimizer())
    trainer = Trainer(Shout(), TRAIN, TRAIN[:2], [], lambda p, t: float(str(p).strip() == t), models,
                      config=TrainConfig(max_steps=2, batch_size=4), run_dir=tmp_path / "run", progress=False)
    with warnings.catch_warnings(record=True) as first:
        warnings.simplefilter("always")
        assert trainer.fit().steps == 2
    assert not [w for w in first if "max_steps" in str(w.message)]  # 2 steps are one epoch: nothing to say
    trainer.config.max_steps = 4
    with pytest.warns(UserWarning, match=r"max_steps=4, but epochs=1 .* stops after step 2: set epochs=2"):
        summary = trainer.fit()
    assert summary.steps == 2
    trainer.config.epochs = 2
    assert trainer.fit().steps == 4


def test_an_example_whose_input_is_not_a_dict_is_refused_before_a_run_folder_exists(tmp_path):
    """`Example("s1", "apple", "APPLE")` (the input as plain text) made a run folder, then crashed
    with "AttributeError: 'str' object has no attribute 'items'" from inside the evaluation memo."""
    examples = [*TRAIN[:3], Example("tr-plain", "apple", "APPLE")]
    models = Models.scripted(task, backward, Optimizer())
    with pytest.raises(ConfigError, match=r"example 'tr-plain' of the train split has the input 'apple'.*dict"):
        Trainer(Shout(), examples, TRAIN[:2], [], lambda p, t: 1.0, models, runs_root=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())
