"""Property tests (hypothesis) for the dataset loaders (issue 9, "Hostile and odd input").

Whatever a data file holds (any JSON shape, JSON Lines, random bytes, text that is not UTF-8,
near-miss TREC lines), `load_bbh`, `load_trec` and `load_hotpotqa` either return examples whose
fields are the documented types or raise `DatasetError` (a `WorkbenchError`) naming the file.
"""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings, strategies as st

from workbench.tasks.datasets import COARSE_LABELS, DatasetError, Example, load_bbh, load_hotpotqa, load_trec

LOADERS = st.sampled_from([load_bbh, load_trec, load_hotpotqa])
FIELD_NAMES = st.sampled_from(["input", "target", "examples", "question", "answer", "context", "_id", "id",
                               "supporting_facts", "type", "level"]) | st.text(max_size=4)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(FIELD_NAMES, inner, max_size=6),
    max_leaves=16,
)
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def load_or_dataset_error(loader, path):
    """The loader's examples, checked for their documented types; None when it refused the file."""
    try:
        examples = loader(path)
    except DatasetError as exc:
        assert str(path) in str(exc) or path.name in str(exc), f"the error does not name the file: {exc}"
        return None
    for example in examples:
        assert isinstance(example, Example)
        assert isinstance(example.id, str) and example.id
        assert isinstance(example.target, str)
        assert all(isinstance(value, str) for value in example.input.values())
    return examples


@SETTINGS
@given(data=JSON_VALUES, loader=LOADERS, as_lines=st.booleans())
def test_any_json_is_loaded_or_refused_with_a_dataset_error(tmp_path, data, loader, as_lines):
    text = "\n".join(json.dumps(item) for item in data) if as_lines and isinstance(data, list) else json.dumps(data)
    path = tmp_path / "data.json"
    path.write_text(text, encoding="utf-8")
    load_or_dataset_error(loader, path)


@SETTINGS
@given(raw=st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
       loader=LOADERS)
def test_any_bytes_are_loaded_or_refused_with_a_dataset_error(tmp_path, raw, loader):
    path = tmp_path / "data.txt"
    path.write_bytes(raw)
    load_or_dataset_error(loader, path)


TREC_LINES = st.builds("{}:{} {}".format, st.sampled_from([*COARSE_LABELS, "desc", "XYZ", ""]),
                       st.text(max_size=6), st.text(max_size=30))


@SETTINGS
@given(lines=st.lists(TREC_LINES, max_size=6), fine=st.booleans())
def test_near_miss_trec_lines_load_with_a_known_label_or_are_refused(tmp_path, lines, fine):
    path = tmp_path / "train_5500.label"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    examples = load_or_dataset_error(lambda p: load_trec(p, fine=fine), path)
    for example in examples or []:
        assert example.target.split(":")[0] in COARSE_LABELS
        assert example.input["question"] == example.input["question"].strip() != ""


@SETTINGS
@given(records=st.lists(st.fixed_dictionaries({"input": st.text(max_size=20),
                                               "target": st.text(max_size=8) | st.integers() | st.floats()}),
                        max_size=5))
def test_well_formed_bbh_keeps_every_example_in_order(tmp_path, records):
    path = tmp_path / "task.json"
    path.write_text(json.dumps({"canary": "x", "examples": records}), encoding="utf-8")
    examples = load_or_dataset_error(load_bbh, path)
    assert examples is not None
    assert [e.id for e in examples] == [f"bbh-{n}" for n in range(len(records))]
    assert [e.input["question"] for e in examples] == [r["input"] for r in records]
