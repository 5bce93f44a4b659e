"""The proposal loop on the embedded Gemma 3 270M (a base model): proposals reach the minibatch gate.

Slow on a shared 2-core machine (a handful of real calls), so it runs only with the `local_model`
marker's tests. The model is a base model served through a chat format: the optimizer uses the short
completion-style prompt, and at least one of its replies must be a real proposal (not an echo of
its prompt) that the minibatch gate then judges.
"""
import pytest

from workbench.llm import LocalServer, Models
from workbench.tasks import get_task
from workbench.training.trainer import TrainConfig, Trainer


@pytest.mark.local_model
def test_the_embedded_base_model_proposes_and_its_proposals_reach_the_minibatch_gate(tmp_path):
    task = get_task("counting")
    train, val, _ = task.load(6, 2, 0, seed=3)
    with LocalServer(startup_timeout_s=300) as server:
        models = Models.local(server=server, cache=None)
        pipeline = task.make_pipeline()
        pipeline.output_format.trainable = False  # one parameter: the instruction
        never = lambda prediction, target: 0.0  # noqa: E731 -- nothing passes, so the step always optimizes
        trainer = Trainer(pipeline, train[:2], val, [], never, models, run_dir=tmp_path / "run",
                          config=TrainConfig(max_steps=1, batch_size=2, max_proposals=5, concurrency=1))
        assert trainer.text_optimizer.style == "completion"
        events = []
        trainer.bus.subscribe(events.append)
        summary = trainer.fit()
        for model in models.by_role().values():
            model.close()
    assert summary.status == "completed"
    proposals = [e.data for e in events if e.type == "proposal"]
    gated = [e.data for e in events if e.type == "minibatch"]
    assert proposals and gated, [(e.type, e.data) for e in events if e.type in ("no_proposal", "update", "skipped")]
    assert all(p["new"].strip() != p["old"].strip() for p in proposals)
    assert {g["proposal_id"] for g in gated} <= {p["proposal_id"] for p in proposals}
