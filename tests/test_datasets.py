"""Tests of workbench.tasks.datasets: the real shared benchmark files, the packaged sample data, the
counting generator, splits, and the error messages for malformed files."""

from __future__ import annotations

import collections
import json
import re

import pytest

from workbench.tasks import datasets
from workbench.tasks.datasets import (COARSE_LABELS, DatasetError, Example, load_bbh, load_hotpotqa, load_multihop,
                                load_question_types, load_sample, load_trec, make_counting, read_sample_text,
                                shared_data_dir, split)


@pytest.fixture(scope="module")
def shared():
    try:
        return shared_data_dir()
    except DatasetError as exc:
        pytest.skip(f"shared benchmark folder not available ({exc})")


# ---------------------------------------------------------------------------------------------
# Real shared data


def test_bbh_object_counting(shared):
    examples = load_bbh(shared / "bbh" / "object_counting.json")
    assert len(examples) == 250
    assert [e.id for e in examples[:2]] == ["bbh-0", "bbh-1"]
    assert all(e.input["question"].startswith("I have ") for e in examples)
    assert all(e.target.isdigit() for e in examples)


def test_trec_train_and_test(shared):
    train = load_trec(shared / "trec" / "train_5500.label")
    test = load_trec(shared / "trec" / "TREC_10.label")
    assert len(train) == 5452 and len(test) == 500
    assert {e.target for e in train} == set(COARSE_LABELS)
    assert not {e.id for e in train} & {e.id for e in test}
    fine = load_trec(shared / "trec" / "TREC_10.label", fine=True)
    assert all(re.fullmatch(r"[A-Z]+:\w+", e.target) for e in fine)
    assert [e.target.split(":")[0] for e in fine] == [e.target for e in test]


def test_trec_stratified_train_like_the_paper(shared):
    train = load_trec(shared / "trec" / "train_5500.label")
    tr, val, te = split(train, train=120, val=60, test=0, seed=0, stratify_by_target=True)
    assert collections.Counter(e.target for e in tr) == {label: 20 for label in COARSE_LABELS}
    assert collections.Counter(e.target for e in val) == {label: 10 for label in COARSE_LABELS}
    assert te == []


def test_shared_data_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path.resolve()
    monkeypatch.setenv("WORKBENCH_SHARED_DATA", str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="WORKBENCH_SHARED_DATA=.*folder not found"):
        shared_data_dir()


def test_shared_data_dir_found_from_a_sibling_clone(tmp_path, monkeypatch):
    (tmp_path / "shared" / "data").mkdir(parents=True)
    clone = tmp_path / "other-clone" / "notebooks"
    clone.mkdir(parents=True)
    monkeypatch.delenv("WORKBENCH_SHARED_DATA", raising=False)
    monkeypatch.chdir(clone)
    assert shared_data_dir() == tmp_path / "shared" / "data"


# ---------------------------------------------------------------------------------------------
# Packaged sample data


def test_question_types_size_and_balance():
    examples = load_question_types()
    assert len(examples) >= 120
    counts = collections.Counter(e.target for e in examples)
    assert set(counts) == set(COARSE_LABELS)
    assert min(counts.values()) >= 15
    assert len({e.id for e in examples}) == len(examples)
    questions = [e.input["question"] for e in examples]
    assert len(set(questions)) == len(questions)
    assert all(q.endswith("?") for q in questions)


def test_multihop_sizes_and_ids():
    examples, documents = load_multihop()
    assert len(documents) >= 40 and len(examples) >= 60
    assert len({d["id"] for d in documents}) == len(documents)
    assert len({e.id for e in examples}) == len(examples)
    for doc in documents:
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", doc["text"].strip()) if s]
        assert 2 <= len(sentences) <= 4, doc["id"]


def test_multihop_answers_are_in_the_bridge_document():
    """Each question needs exactly two documents: the answer is a span of the second one only, and
    the second one does not name the entity the first one is about."""
    examples, documents = load_multihop()
    by_id = {d["id"]: d for d in documents}
    for example in examples:
        supporting = example.meta["supporting"]
        assert len(supporting) == 2 and supporting[0] != supporting[1], example.id
        assert all(doc_id in by_id for doc_id in supporting), example.id
        first, second = (by_id[doc_id] for doc_id in supporting)
        assert any(example.target in by_id[d]["text"] for d in supporting), example.id
        assert example.target in second["text"], example.id
        assert example.target.lower() not in first["text"].lower(), example.id
        assert first["title"].lower() not in second["text"].lower(), example.id
        assert len(example.target.split()) <= 5, example.id


def test_every_document_is_used():
    examples, documents = load_multihop()
    used = {doc_id for e in examples for doc_id in e.meta["supporting"]}
    assert used == {d["id"] for d in documents}


def test_load_sample_by_name():
    assert load_sample("question_types") == load_question_types()
    assert load_sample("multihop") == load_multihop()[0]
    assert len(load_sample("counting")) == 200
    with pytest.raises(DatasetError, match="unknown sample dataset 'nope'.*question_types"):
        load_sample("nope")


def test_sample_files_fall_back_to_the_installed_package(tmp_path, monkeypatch):
    """In a wheel the files live in the workbench._sample_data package, not next to the source."""
    package = tmp_path / "site" / "workbench" / "_sample_data"
    package.mkdir(parents=True)
    (package / "question_types.jsonl").write_text('{"id": "x", "question": "Why?", "label": "DESC"}\n')
    fake_module = tmp_path / "site" / "workbench" / "datasets.py"
    monkeypatch.setattr(datasets, "__file__", str(fake_module))
    monkeypatch.setattr(datasets.importlib.resources, "files",
                        lambda name: package if name == "workbench._sample_data" else None)
    text, source = read_sample_text("question_types.jsonl")
    assert source == "workbench._sample_data/question_types.jsonl"
    assert [e.target for e in load_question_types()] == ["DESC"]


# ---------------------------------------------------------------------------------------------
# Counting generator

_NUMBERS = {"a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
            "nine": 9, "ten": 10}


def _recount(question: str) -> int:
    """Count the asked category from the question text alone."""
    match = re.fullmatch(r"I have (.+)\. How many (.+) do I have\?", question)
    assert match, question
    listing, asked = match.groups()
    category_of = {}
    for category, words in datasets.COUNTING_CATEGORIES.items():
        for singular, plural in words:
            category_of[singular] = category
            category_of[plural] = category
    total = 0
    for phrase in re.split(r", and |, | and ", listing):
        number, noun = phrase.split(" ", 1)
        if category_of[noun] == asked:
            total += _NUMBERS[number]
    return total


def test_counting_vocabulary_is_unambiguous():
    """A word in two categories would make some targets debatable."""
    categories_of = collections.defaultdict(set)
    for category, words in datasets.COUNTING_CATEGORIES.items():
        for singular, plural in words:
            categories_of[singular].add(category)
            categories_of[plural].add(category)
    assert all(len(found) == 1 for found in categories_of.values()), categories_of


def test_counting_is_deterministic_and_correct():
    first = make_counting(300, seed=7)
    assert first == make_counting(300, seed=7)
    assert first != make_counting(300, seed=8)
    assert make_counting(10, seed=7) == first[:10]
    for example in first:
        assert example.target == str(_recount(example.input["question"])), example.input["question"]
        assert int(example.target) >= 1
    categories = collections.Counter(e.meta["category"] for e in first)
    assert set(categories) == set(datasets.COUNTING_CATEGORIES)
    with_distractors = [e for e in first if any(i["category"] != e.meta["category"] for i in e.meta["items"])]
    assert len(with_distractors) > len(first) // 2
    assert len({e.id for e in first}) == 300


def test_counting_grammar():
    for example in make_counting(200, seed=1):
        question = example.input["question"]
        assert " a a" not in question and " a o" not in question and " an c" not in question
        items = len(example.meta["items"])
        assert question.count(", and ") == (1 if items >= 3 else 0)


# ---------------------------------------------------------------------------------------------
# Splits


def _numbered(n: int, classes: int = 3) -> list[Example]:
    return [Example(f"e{i}", {"question": f"q{i}"}, f"c{i % classes}") for i in range(n)]


def test_split_deterministic_and_disjoint():
    examples = _numbered(300)
    train, val, test = split(examples, seed=3)
    assert (len(train), len(val), len(test)) == (50, 50, 100)
    assert (train, val, test) == split(examples, seed=3)
    assert split(examples, seed=4)[0] != train
    ids = [e.id for e in train + val + test]
    assert len(set(ids)) == len(ids)
    assert examples == _numbered(300)  # the input list is not shuffled in place


def test_split_not_enough_examples():
    with pytest.raises(DatasetError, match=r"need 200 examples \(train=50, val=50, test=100\) but only 120"):
        split(_numbered(120))
    with pytest.raises(DatasetError, match="test size must be >= 0"):
        split(_numbered(10), train=1, val=1, test=-1)


def test_split_stratified_counts():
    examples = _numbered(90, classes=3)
    train, val, test = split(examples, train=9, val=6, test=10, seed=0, stratify_by_target=True)
    assert collections.Counter(e.target for e in train) == {"c0": 3, "c1": 3, "c2": 3}
    assert collections.Counter(e.target for e in val) == {"c0": 2, "c1": 2, "c2": 2}
    assert collections.Counter(e.target for e in test) == {"c0": 4, "c1": 3, "c2": 3}
    ids = [e.id for e in train + val + test]
    assert len(set(ids)) == len(ids)
    assert (train, val, test) == split(examples, train=9, val=6, test=10, seed=0, stratify_by_target=True)


def test_split_stratified_small_class():
    examples = _numbered(60, classes=3) + [Example("rare", {"question": "?"}, "rare")]
    with pytest.raises(DatasetError, match="class 'rare' has 1 examples but the stratified split needs 4"):
        split(examples, train=8, val=4, test=4, stratify_by_target=True)


# ---------------------------------------------------------------------------------------------
# Malformed input


def test_missing_files(tmp_path):
    missing = tmp_path / "nope.json"
    for loader, name in ((load_bbh, "load_bbh"), (load_trec, "load_trec"), (load_hotpotqa, "load_hotpotqa")):
        with pytest.raises(DatasetError, match=f"{name}: file not found: .*nope.json"):
            loader(missing)


def test_bbh_errors(tmp_path):
    path = tmp_path / "task.json"
    path.write_text('{"canary": "x",\n "examples": [{"input": "q", "target": "1"},]}')
    with pytest.raises(DatasetError, match=r"task.json: invalid JSON at line 2, column \d+"):
        load_bbh(path)
    path.write_text('{"canary": "x"}')
    with pytest.raises(DatasetError, match="task.json: missing field 'examples'"):
        load_bbh(path)
    path.write_text('{"examples": [{"input": "q", "target": "1"}, {"input": "q2"}]}')
    with pytest.raises(DatasetError, match=r"task.json, examples\[1\]: missing field 'target'"):
        load_bbh(path)
    path.write_text('{"examples": [{"input": ["q"], "target": "1"}]}')
    with pytest.raises(DatasetError, match=r"examples\[0\]: field 'input' must be a string, got list"):
        load_bbh(path)
    path.write_text('{"examples": [{"input": "q", "target": 3}]}')
    assert load_bbh(path)[0].target == "3"


def test_trec_errors(tmp_path):
    path = tmp_path / "bad.label"
    path.write_text("LOC:city What is the capital of Peru ?\n\nWhat is missing a label ?\n")
    with pytest.raises(DatasetError, match=r"bad.label, line 3: expected 'COARSE:fine question text', "
                                           r"got 'What is missing a label \?'"):
        load_trec(path)
    path.write_text("LOC:city Where ?\nPLACE:city Where else ?\n")
    with pytest.raises(DatasetError, match="bad.label, line 2: unknown coarse label 'PLACE'"):
        load_trec(path)


def test_trec_reads_latin1_files(tmp_path):
    path = tmp_path / "latin.label"
    path.write_bytes("LOC:city Where is Sa\xf5 Paulo ?\n".encode("latin-1"))
    assert load_trec(path)[0].input["question"] == "Where is Sa\xf5 Paulo ?"


def test_hotpotqa_formats_and_errors(tmp_path):
    record = {"_id": "h1", "question": "Q?", "answer": "A", "type": "bridge", "level": "hard",
              "supporting_facts": [["T1", 0], ["T2", 1]],
              "context": [["T1", ["s0."]], ["T2", ["s0.", "s1."]]]}
    as_list = tmp_path / "dev.json"
    as_list.write_text(json.dumps([record]))
    as_lines = tmp_path / "dev.jsonl"
    as_lines.write_text(json.dumps(record) + "\n\n" + json.dumps({**record, "_id": "h2"}) + "\n")
    [from_list] = load_hotpotqa(as_list)
    assert from_list.id == "h1" and from_list.input == {"question": "Q?"} and from_list.target == "A"
    assert from_list.meta["supporting_facts"] == [["T1", 0], ["T2", 1]]
    assert from_list.meta["context"][1] == ["T2", ["s0.", "s1."]]
    assert [e.id for e in load_hotpotqa(as_lines)] == ["h1", "h2"]

    as_lines.write_text(json.dumps(record) + "\n" + '{"question": "Q?", "answer": }\n')
    with pytest.raises(DatasetError, match=r"dev.jsonl, line 2: invalid JSON at column \d+"):
        load_hotpotqa(as_lines)
    as_lines.write_text(json.dumps({"question": "Q?"}) + "\n")
    with pytest.raises(DatasetError, match="dev.jsonl, line 1: missing field 'answer'"):
        load_hotpotqa(as_lines)
    as_list.write_text(json.dumps([record, {**record, "context": [["T1", "not a list"]]}]))
    with pytest.raises(DatasetError, match="dev.json, record 1: field 'context' must be a list"):
        load_hotpotqa(as_list)
    as_list.write_text("[" + json.dumps(record) + ",\n oops]")
    with pytest.raises(DatasetError, match=r"dev.json: invalid JSON at line 2, column 2"):
        load_hotpotqa(as_list)


def test_example_round_trip():
    example = make_counting(1, seed=0)[0]
    assert Example.from_dict(json.loads(json.dumps(example.to_dict()))) == example
    assert len({example, Example.from_dict(example.to_dict())}) == 1
