"""The dashboard's funnel at scale: each event is folded into the reducers once (never the whole
history again per event), and a burst of events is one push, however long the run has been."""
import warnings

from workbench.records.events import EventBus
from workbench.llm.models import Models
from workbench.records.store import read_events
from workbench.training.trainer import TrainConfig, Trainer
from workbench.ui.funnel import Funnel
from workbench.ui.state import RunState

from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task


class Counting(RunState):
    applied = 0

    def apply(self, event):
        Counting.applied += 1
        super().apply(event)


class View:
    """A view without a browser."""

    def __init__(self, kind):
        self.kind, self.sets = kind, 0

    def __getattr__(self, name):
        return None

    def hold_sync(self):
        from contextlib import nullcontext
        return nullcontext()


def test_every_event_is_folded_once_and_a_burst_is_one_push(tmp_path, monkeypatch):
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      config=TrainConfig(max_steps=2, batch_size=4, concurrency=2), run_dir=tmp_path / "run")
    trainer.fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = list(read_events(tmp_path / "run" / "events.jsonl")) * 3  # a log three runs long
    monkeypatch.setattr("workbench.ui.funnel.RunState", Counting)
    bus = EventBus(strict=False)
    funnel = Funnel(bus=bus, threaded=False, svg_renderer=lambda layout: "<svg/>")
    for kind in ("graph", "samples", "curves", "review", "controls"):
        funnel.attach(View(kind))
    flushes = 0
    for start in range(0, len(events), 50):
        for e in events[start:start + 50]:
            funnel._on_event(e)
        funnel.flush()
        flushes += 1
    funnel.close()
    assert Counting.applied == len(events)
    assert funnel.pushes <= flushes
