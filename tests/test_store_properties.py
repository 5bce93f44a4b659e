"""Property-based tests of the run store: any event round-trips, and no damage crashes a reader."""
import math
import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.errors import DamagedFileWarning
from workbench.records.events import Event
from workbench.records.store import RunStore
from workbench.records.run_list import list_runs

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)  # lone surrogates too
json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4), max_leaves=25)


def fresh_store() -> RunStore:
    return RunStore.create(Path(tempfile.mkdtemp(prefix="store-prop-")) / "run", {"task": "t"})


def same(a, b) -> bool:
    """Equality that treats lists and tuples alike (JSON has only lists)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isinf(a):
        return a == b
    return a == b


@SETTINGS
@given(st.lists(st.tuples(any_text.filter(bool), st.dictionaries(any_text, json_like, max_size=5)),
                min_size=1, max_size=5))
def test_any_event_is_stored_and_read_back_unchanged(events):
    store = fresh_store()
    for i, (type_name, data) in enumerate(events):
        store.on_event(Event(type_name, data, run_id="r", step=i))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedFileWarning)  # nothing written by the store is damaged
        back = list(store.events())
    assert [(e.type, e.step) for e in back] == [(t, i) for i, (t, _) in enumerate(events)]
    assert all(same(e.data, data) for e, (_, data) in zip(back, events))


@SETTINGS
@given(st.binary(max_size=300))
def test_any_damage_to_the_log_skips_lines_and_loses_no_later_event(garbage):
    store = fresh_store()
    store.on_event(Event("control", {"action": "pause"}))
    with open(store.path / "events.jsonl", "ab") as f:
        f.write(garbage)
    later = RunStore(store.path)
    later.on_event(Event("control", {"action": "stop"}, step=9))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedFileWarning)
        back = list(later.events())
    assert back[0].data == {"action": "pause"}
    assert (back[-1].type, back[-1].step, back[-1].data) == ("control", 9, {"action": "stop"})


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from(["config.json", "summary.json", "cli.json", "latest.json"]))
def test_any_damaged_file_is_a_damaged_row_or_a_skipped_checkpoint_never_a_crash(garbage, name):
    store = fresh_store()
    store.write_checkpoint(0, {"schema": 1, "step": 0, "parameters": {}, "memory": {}, "best_val": None,
                               "best_step": 0, "baseline": {}, "curve": []})
    (store.path / name).write_bytes(garbage)
    (store.path / "checkpoints" / "step-0001.json").write_bytes(garbage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedFileWarning)
        state = store.latest_checkpoint()
        (row,) = list_runs(store.path.parent)
    assert state["step"] == 0  # garbage never validates as a checkpoint: the one before it is used
    assert row["run_id"] == "run" and row["status"] in ("damaged", "running or interrupted")
