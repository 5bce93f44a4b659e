"""Eval functions as users write them (audit 2): what they return is a score if it is a number."""
import numpy as np

from workbench import LLMCall, Parameter, Pipeline
from workbench.tasks.datasets import Example
from workbench.llm.models import Models
from workbench.training.trainer import TrainConfig, Trainer


class Digits(Pipeline):
    """Counts the letters of a word; the reply is turned into an int before scoring."""

    def __init__(self):
        self.instruction = Parameter("letters.instruction", "How long is the word?", description="what to count")
        self.node = LLMCall("letters", "{{instruction}}\nWord: {{word}}", [self.instruction])

    def forward(self, word):
        return self.node(word=word)


def test_an_eval_function_returning_a_numpy_bool_is_a_score(tmp_path):
    """`np.int64(n) == int(target)` is a numpy bool: it used to stop the run with an
    EvalFunctionError ("returned np.True_ (bool) ... must return a finite number")."""
    examples = [Example(f"w{i}", {"word": w}, str(len(w)), {}) for i, w in enumerate(["ab", "abc", "abcd"])]
    models = Models.scripted(lambda m: str(len(m[-1]["content"].split("Word: ")[1])),
                             lambda m: "Count the letters.", lambda m: "<PROPOSAL>Count the letters.</PROPOSAL>")

    def same_number(prediction, target):
        return np.int64(int(prediction)) == int(target)

    trainer = Trainer(Digits(), examples, examples[:1], examples[1:], same_number, models,
                      config=TrainConfig(max_steps=1, batch_size=3), run_dir=tmp_path / "run", progress=False)
    summary = trainer.fit()
    assert summary.status == "completed" and summary.baseline == {"val": 1.0, "test": 1.0}
