"""Datasets: loaders for the benchmark formats, the packaged sample data, and seeded splits.

Every loader returns a list of :class:`Example` so pipelines, the runner and the trainer never care
where a sample came from: ``pipeline(**example.input)`` is scored against ``example.target``.
Users bring their own copies of public datasets, so the loaders accept any file in the format and
fail with a :class:`DatasetError` that names the file, the line or record, and the field.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..engine.example import Example
from ..errors import DatasetError
from .counting_data import COUNTING_CATEGORIES, make_counting

__all__ = [
    "COARSE_LABELS", "COUNTING_CATEGORIES", "DatasetError", "Example", "HOTPOTQA_FILE", "SAMPLE_NAMES",
    "hotpotqa_path", "load_bbh", "load_hotpotqa", "load_multihop", "load_question_types", "load_review_sentiment",
    "load_sample", "load_trec", "make_counting", "read_sample_text", "shared_data_dir", "split",
]

COARSE_LABELS = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
SHARED_DATA_ENV = "WORKBENCH_SHARED_DATA"
HOTPOTQA_FILE = "hotpotqa/dev_distractor_500.jsonl"  # in the shared data folder


# ----------------------------------------------------------------------------------------------
# Reading files with errors that say where the problem is


def _read_text(path: str | os.PathLike, loader: str) -> tuple[Path, str]:
    """Read a text file; public copies are not always UTF-8 (TREC's training file has a Latin-1 byte)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{loader}: file not found: {path}")
    raw = path.read_bytes()
    try:
        return path, raw.decode("utf-8")
    except UnicodeDecodeError:
        return path, raw.decode("latin-1")


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def _parse_jsonl(text: str, source: str) -> list[tuple[int, dict]]:
    """Parse JSON Lines, returning (line number, object) pairs; blank lines are allowed."""
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{source}, line {number}: invalid JSON at column {exc.colno}: {exc.msg}") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{source}, line {number}: expected a JSON object, got {type(record).__name__}")
        records.append((number, record))
    return records


def _field(record: dict, name: str, where: str, *, text: bool = True, allow_number: bool = False) -> Any:
    """Fetch a required field; numbers are accepted as text where datasets store answers as numbers."""
    if name not in record:
        raise DatasetError(f"{where}: missing field '{name}'")
    value = record[name]
    if not text:
        return value
    if allow_number and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DatasetError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    return value


# ----------------------------------------------------------------------------------------------
# Public benchmark formats


def load_bbh(path: str | os.PathLike) -> list[Example]:
    """Load any BIG-Bench Hard task file (``{"canary": ..., "examples": [{"input", "target"}]}``).

    Ids are ``bbh-<n>`` with n the 0-based position in ``examples``, so an id points back to the file.
    """
    path, text = _read_text(path, "load_bbh")
    data = _parse_json(text, str(path))
    if not isinstance(data, dict) or "examples" not in data:
        raise DatasetError(f"{path}: missing field 'examples' (expected a BIG-Bench Hard task object)")
    if not isinstance(data["examples"], list):
        raise DatasetError(f"{path}: field 'examples' must be a list, got {type(data['examples']).__name__}")
    examples = []
    for n, record in enumerate(data["examples"]):
        where = f"{path}, examples[{n}]"
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: expected an object with 'input' and 'target'")
        question = _field(record, "input", where)
        target = _field(record, "target", where, allow_number=True)
        examples.append(Example(f"bbh-{n}", {"question": question}, target.strip(),
                                {"source": path.name, "index": n}))
    return examples


_TREC_LINE = re.compile(r"^([^:\s]+):(\S+)\s+(\S.*)$")


def load_trec(path: str | os.PathLike, fine: bool = False) -> list[Example]:
    """Load a TREC question-classification label file (``COARSE:fine question text`` per line).

    The target is the coarse label (the paper's 6-way task) or ``COARSE:fine`` with ``fine=True``.
    Ids are ``trec-<file stem>-<line number>`` so the train and test files never collide.
    """
    path, text = _read_text(path, "load_trec")
    examples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _TREC_LINE.match(line.strip())
        if not match:
            raise DatasetError(f"{path}, line {number}: expected 'COARSE:fine question text', got {line!r}")
        coarse, fine_label, question = match.groups()
        if coarse not in COARSE_LABELS:
            raise DatasetError(f"{path}, line {number}: unknown coarse label {coarse!r} "
                               f"(expected one of {', '.join(COARSE_LABELS)})")
        target = f"{coarse}:{fine_label}" if fine else coarse
        examples.append(Example(f"trec-{path.stem}-{number}", {"question": question.strip()}, target,
                                {"source": path.name, "line": number, "coarse": coarse,
                                 "fine": f"{coarse}:{fine_label}"}))
    return examples


def load_hotpotqa(path: str | os.PathLike) -> list[Example]:
    """Load HotpotQA records from the official JSON list or from JSON Lines.

    The context paragraphs and supporting facts go to ``meta`` so a retriever or an evaluator can
    use them without them leaking into the pipeline's inputs.
    """
    path, text = _read_text(path, "load_hotpotqa")
    if text.lstrip().startswith("["):
        data = _parse_json(text, str(path))
        records = [(f"{path}, record {n}", record) for n, record in enumerate(data)]
    else:
        records = [(f"{path}, line {number}", record) for number, record in _parse_jsonl(text, str(path))]
    examples = []
    for n, (where, record) in enumerate(records):
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(record).__name__}")
        question = _field(record, "question", where)
        answer = _field(record, "answer", where, allow_number=True)
        context = record.get("context", [])
        if not isinstance(context, list) or not all(
                isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], list)
                for p in context):
            raise DatasetError(f"{where}: field 'context' must be a list of [title, [sentences]] pairs")
        meta = {"context": context, "supporting_facts": record.get("supporting_facts", [])}
        for extra in ("type", "level"):
            if extra in record:
                meta[extra] = record[extra]
        example_id = str(record.get("_id") or record.get("id") or f"hotpot-{n}")
        examples.append(Example(example_id, {"question": question}, answer, meta))
    return examples


# ----------------------------------------------------------------------------------------------
# Packaged sample data (original, MIT) -- works from a source checkout and from an installed wheel

SAMPLE_NAMES = ("question_types", "review_sentiment", "multihop", "counting")
_SAMPLE_FILES = ("question_types.jsonl", "review_sentiment.jsonl", "multihop_docs.jsonl", "multihop_qa.jsonl",
                 "README.md")


def read_sample_text(filename: str) -> tuple[str, str]:
    """Return (text, where it was read from) for a file of the packaged sample data.

    A source checkout keeps the files in ``<repo>/sample_data``; a wheel ships them as the
    ``workbench._sample_data`` package, which is what the fallback reads.
    """
    if filename not in _SAMPLE_FILES:
        raise DatasetError(f"unknown sample file {filename!r} (available: {', '.join(_SAMPLE_FILES)})")
    checkout = Path(__file__).resolve().parents[2] / "sample_data" / filename
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8"), str(checkout)
    try:
        resource = importlib.resources.files("workbench._sample_data") / filename
        return resource.read_text(encoding="utf-8"), f"workbench._sample_data/{filename}"
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        raise DatasetError(f"sample data: file not found: {checkout} "
                           f"(nor in the installed package workbench._sample_data)") from None


def load_question_types() -> list[Example]:
    """The original 6-class question set (TREC coarse labels), for offline classification demos."""
    text, source = read_sample_text("question_types.jsonl")
    examples = []
    for number, record in _parse_jsonl(text, source):
        where = f"{source}, line {number}"
        label = _field(record, "label", where)
        if label not in COARSE_LABELS:
            raise DatasetError(f"{where}: unknown coarse label {label!r} (expected one of {', '.join(COARSE_LABELS)})")
        examples.append(Example(_field(record, "id", where), {"question": _field(record, "question", where)},
                                label, {"source": "question_types.jsonl", "line": number}))
    return examples


def load_review_sentiment() -> list[Example]:
    """The original short reviews labelled positive / negative (pairs on one topic, one of each), for
    the few-shot demo on a small base model."""
    text, source = read_sample_text("review_sentiment.jsonl")
    examples = []
    for number, record in _parse_jsonl(text, source):
        where = f"{source}, line {number}"
        label = _field(record, "label", where)
        if label not in ("positive", "negative"):
            raise DatasetError(f"{where}: unknown label {label!r} (expected positive or negative)")
        examples.append(Example(_field(record, "id", where), {"review": _field(record, "review", where)},
                                label, {"source": "review_sentiment.jsonl", "line": number}))
    return examples


def load_multihop() -> tuple[list[Example], list[dict[str, str]]]:
    """The fictional-world two-hop QA set and its documents: (examples, documents).

    Documents are ``{"id", "title", "text"}`` dicts (the retrieval corpus); each example's
    ``meta["supporting"]`` lists the two document ids it needs, bridge document first.
    """
    docs_text, docs_source = read_sample_text("multihop_docs.jsonl")
    documents = []
    for number, record in _parse_jsonl(docs_text, docs_source):
        where = f"{docs_source}, line {number}"
        documents.append({name: _field(record, name, where) for name in ("id", "title", "text")})
    known = {doc["id"] for doc in documents}

    qa_text, qa_source = read_sample_text("multihop_qa.jsonl")
    examples = []
    for number, record in _parse_jsonl(qa_text, qa_source):
        where = f"{qa_source}, line {number}"
        supporting = _field(record, "supporting", where, text=False)
        if not isinstance(supporting, list) or not all(isinstance(s, str) for s in supporting):
            raise DatasetError(f"{where}: field 'supporting' must be a list of document ids")
        missing = [s for s in supporting if s not in known]
        if missing:
            raise DatasetError(f"{where}: field 'supporting' names unknown documents {missing}")
        examples.append(Example(_field(record, "id", where), {"question": _field(record, "question", where)},
                                _field(record, "answer", where),
                                {"supporting": supporting, "source": "multihop_qa.jsonl", "line": number}))
    return examples, documents


def load_sample(name: str) -> list[Example]:
    """Examples of a packaged sample set by name: question_types, review_sentiment, multihop, or counting
    (200, seed 0)."""
    if name == "question_types":
        return load_question_types()
    if name == "review_sentiment":
        return load_review_sentiment()
    if name == "multihop":
        return load_multihop()[0]
    if name == "counting":
        return make_counting(200, seed=0)
    raise DatasetError(f"unknown sample dataset {name!r} (available: {', '.join(SAMPLE_NAMES)})")


# ----------------------------------------------------------------------------------------------
# Splits and the shared benchmark folder


def split(examples: Sequence[Example], train: int = 50, val: int = 50, test: int = 100, seed: int = 0,
          stratify_by_target: bool = False) -> tuple[list[Example], list[Example], list[Example]]:
    """Draw disjoint (train, val, test) sets with ``random.Random(seed)``, so runs are reproducible.

    With ``stratify_by_target=True`` every split is balanced over the targets: each split's size is
    divided evenly among the classes (the paper's TREC protocol: ``train=120`` gives 20 per class),
    any remainder going to the classes first in sorted order.
    """
    sizes = {"train": train, "val": val, "test": test}
    for name, size in sizes.items():
        if size < 0:
            raise DatasetError(f"split: {name} size must be >= 0, got {size}")
    needed = train + val + test
    rng = random.Random(seed)
    if not stratify_by_target:
        if len(examples) < needed:
            raise DatasetError(f"split: need {needed} examples (train={train}, val={val}, test={test}) "
                               f"but only {len(examples)} were given")
        pool = list(examples)
        rng.shuffle(pool)
        return pool[:train], pool[train:train + val], pool[train + val:needed]

    by_target: dict[str, list[Example]] = {}
    for example in examples:
        by_target.setdefault(example.target, []).append(example)
    classes = sorted(by_target)
    if not classes:
        if needed:
            raise DatasetError(f"split: need {needed} examples but none were given")
        return [], [], []
    for members in (by_target[c] for c in classes):
        rng.shuffle(members)

    def share(size: int) -> dict[str, int]:
        base, extra = divmod(size, len(classes))
        return {c: base + (1 if k < extra else 0) for k, c in enumerate(classes)}

    quotas = {name: share(size) for name, size in sizes.items()}
    for c in classes:
        wanted = sum(quotas[name][c] for name in sizes)
        if len(by_target[c]) < wanted:
            detail = ", ".join(f"{name}={quotas[name][c]}" for name in sizes)
            raise DatasetError(f"split: class {c!r} has {len(by_target[c])} examples but the stratified split "
                               f"needs {wanted} of it ({detail})")
    result: dict[str, list[Example]] = {name: [] for name in sizes}
    taken = {c: 0 for c in classes}
    for name in sizes:
        for c in classes:
            result[name].extend(by_target[c][taken[c]:taken[c] + quotas[name][c]])
            taken[c] += quotas[name][c]
        rng.shuffle(result[name])  # do not present the classes in blocks
    return result["train"], result["val"], result["test"]


def shared_data_dir() -> Path:
    """Find the shared benchmark folder (``<parent of the repo>/shared/data``).

    ``WORKBENCH_SHARED_DATA`` wins; otherwise look upward from the working directory and from this
    package for a ``shared/data`` folder, which finds ``/work/shared/data`` from ``/work/main`` or
    from any clone next to it.
    """
    configured = os.environ.get(SHARED_DATA_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise DatasetError(f"{SHARED_DATA_ENV}={configured}: folder not found: {path}")
        return path.resolve()
    starts = _unique([Path.cwd().resolve(), Path(__file__).resolve().parent])
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / "shared" / "data"
            if candidate.is_dir():
                return candidate
    raise DatasetError(f"shared data folder not found: looked for shared/data above "
                       f"{' and '.join(str(s) for s in starts)}; set {SHARED_DATA_ENV} to its path")


def hotpotqa_path() -> Path:
    """The shared HotpotQA file (dev set, distractor setting, first 500 questions); never copied into the repo."""
    path = shared_data_dir() / HOTPOTQA_FILE
    if not path.is_file():
        raise DatasetError(f"HotpotQA file not found: {path} (set {SHARED_DATA_ENV} to the folder holding "
                           f"{HOTPOTQA_FILE}, or pass the file as the source)")
    return path


def _unique(paths: Iterable[Path]) -> list[Path]:
    seen: list[Path] = []
    for path in paths:
        if path not in seen:
            seen.append(path)
    return seen
