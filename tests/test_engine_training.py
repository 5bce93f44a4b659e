"""End to end: a pipeline that post-processes its LLM output trains, and a lost link is said, not silent."""
from workbench import LLMCall, Parameter, Pipeline
from workbench.llm.models import Models
from workbench.training.trainer import TrainConfig, Trainer

from scripted_tasks import GOOD, TEST, TRAIN, VAL, Optimizer, backward, same_text, task


class CleanedShout(Pipeline):
    """Shout, but the reply is cleaned the way users write it (issue 8.1's examples)."""

    def __init__(self, clean):
        self.instruction = Parameter("shout.instruction", "Repeat the word.",
                                     description="tells the model how to write the word")
        self.node = LLMCall("shout", "{{instruction}}\nWord: {{word}}", [self.instruction])
        self.clean = clean

    def forward(self, word):
        return self.clean(self.node(word=word))


def padded_task(messages):
    return "  " + task(messages) + "!\n"


def train(tmp_path, clean):
    events = []
    trainer = Trainer(CleanedShout(clean), TRAIN, VAL, TEST, same_text,
                      Models.scripted(padded_task, backward, Optimizer()),
                      config=TrainConfig(max_steps=2, batch_size=4, concurrency=2), run_dir=tmp_path / "run")
    trainer.bus.subscribe(events.append)
    return trainer, trainer.fit(), events


def test_post_processed_output_gets_gradients_and_the_prompt_improves(tmp_path):
    trainer, summary, events = train(tmp_path, lambda t: t.strip().replace("!", "").split()[0])
    assert summary.final["val"] == 1.0 and trainer.params["shout.instruction"].value == GOOD
    assert any(e.type == "gradient" and e.data["target"] == "shout.instruction" for e in events)
    assert not any(e.type == "disconnected" for e in events)


def test_a_link_python_cannot_track_is_reported_as_disconnected(tmp_path):
    trainer, summary, events = train(tmp_path, lambda t: "".join(ch for ch in t.strip()[:-1]))  # char by char
    lost = [e.data for e in events if e.type == "disconnected"]
    assert lost and lost[0]["parameter"] == "shout.instruction" and lost[0]["node_id"] == "shout"
    assert "not linked to any later node" in lost[0]["reason"]
    assert not any(e.type == "gradient" and e.data["target"] == "shout.instruction" for e in events)
