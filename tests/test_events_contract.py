"""The event contract: one typed definition per event type, checked on emit, in the docs, and at
every place that reads events (so a renamed field cannot silently blank a view)."""
import ast
import json
import logging
from pathlib import Path

import pytest

from workbench.records import events as ev
from workbench.errors import EventContractError, WorkbenchError
from workbench.records.events import EVENT_TYPES, Event, EventBus, problems

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "workbench"


# -- emit checks the definition ------------------------------------------------------------------

def test_strict_bus_rejects_unknown_type_missing_unknown_and_mistyped_fields():
    bus = EventBus(strict=True)
    seen = []
    bus.subscribe(seen.append)
    with pytest.raises(EventContractError, match="unknown event type 'nope'"):
        bus.emit(Event("nope", {}))
    with pytest.raises(EventContractError, match="lacks required field 'reason'"):
        bus.emit(Event("disconnected", {"parameter": "a.b", "node_id": "a", "sample_id": "s1"}))
    with pytest.raises(EventContractError, match="unknown field 'colour'"):
        bus.emit(Event("control", {"action": "pause", "colour": "red"}))
    with pytest.raises(EventContractError, match="'system_messages' = 'maybe'"):
        bus.emit(Event("endpoint_probe", {"role": "task", "base_url": "http://x/v1", "model": "m",
                                          "system_messages": "maybe", "fold_system": False, "source": "probe"}))
    with pytest.raises(EventContractError, match="'samples'"):
        bus.emit(Event("minibatch", {"proposal_id": "p1", "before": 0.5, "after": 1, "passed": True,
                                     "samples": [3]}))
    assert seen == []  # nothing that broke the contract was delivered
    assert issubclass(EventContractError, WorkbenchError) and issubclass(EventContractError, ValueError)


def test_lenient_bus_logs_once_and_still_delivers(caplog):
    bus = EventBus(strict=False)
    seen = []
    bus.subscribe(seen.append)
    with caplog.at_level(logging.WARNING, logger="workbench.records.events"):
        for _ in range(3):
            bus.emit(Event("control", {"action": "pause", "colour": "red"}))
        for action in ("later", "never"):
            bus.emit(Event("control", {"action": action}))
    assert len(seen) == 5 and seen[0].data["colour"] == "red" and seen[4].data["action"] == "never"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unknown field 'colour'" in m for m in messages) == 1
    assert sum("field 'action' = " in m for m in messages) == 1  # once per field, whatever the value


def test_strictness_follows_the_environment(monkeypatch):
    monkeypatch.setenv("WORKBENCH_STRICT_EVENTS", "0")
    EventBus().emit(Event("nope", {}))  # logged, not raised
    monkeypatch.setenv("WORKBENCH_STRICT_EVENTS", "1")
    with pytest.raises(EventContractError):
        EventBus().emit(Event("nope", {}))
    monkeypatch.delenv("WORKBENCH_STRICT_EVENTS")
    assert ev.strict_by_default()  # under pytest


def test_optional_fields_are_filled_with_their_defaults_for_subscribers():
    bus = EventBus(strict=True)
    seen = []
    bus.subscribe(seen.append)
    bus.emit(Event("minibatch", {"proposal_id": "p1", "before": 0.5, "after": 1.0, "passed": True}, step=3))
    bus.emit(Event("proposal", {"proposal_id": "p1", "parameter": "a.b", "role": "instruction", "old": "x",
                                "new": "y", "source": "optimizer", "gradient_summary": ""}))
    assert seen[0].data == {"proposal_id": "p1", "before": 0.5, "after": 1.0, "passed": True,
                            "left_out": 0, "samples": []}
    assert seen[0].step == 3
    assert seen[1].data["attempt"] is None and seen[1].data["group"] is None
    second = EventBus(strict=True)
    second.subscribe(seen.append)
    second.emit(Event("minibatch", {"proposal_id": "p2", "before": 0.5, "after": 1.0, "passed": True}))
    assert seen[2].data["samples"] == [] and seen[2].data["samples"] is not seen[0].data["samples"]


def test_typed_emission_and_typed_access_round_trip():
    event = ev.Disconnected(parameter="login.password", node_id="clean", sample_id="s1",
                            reason="the output was post-processed into a plain str").event(run_id="r", step=2)
    assert problems(event) == [] and event.type == "disconnected" and event.step == 2
    back = ev.Disconnected.of(Event.from_dict(json.loads(json.dumps(event.to_dict()))))
    assert back.node_id == "clean"
    with pytest.raises(EventContractError, match="'disconnected' events, not 'control'"):
        ev.Disconnected.of(Event("control", {"action": "stop"}))
    with pytest.raises(EventContractError, match="lacks required field"):
        ev.Disconnected.of(Event("disconnected", {"parameter": "a"}))
    # a log written by another version: unknown fields are ignored when reading, defaults filled in
    old = ev.Minibatch.of(Event("minibatch", {"proposal_id": "p1", "before": 0.5, "after": 1.0, "passed": True,
                                              "renamed_later": 3}))
    assert old.left_out == 0 and old.samples == [] and not hasattr(old, "renamed_later")


def test_subscribing_to_an_unknown_type_is_a_contract_error():
    with pytest.raises(EventContractError, match="gradients"):
        EventBus(strict=True).subscribe(lambda e: None, {"gradients"})


def test_every_line_of_the_log_names_its_schema_version():
    line = Event("control", {"action": "stop"}, run_id="r").to_dict()
    assert line["schema"] == ev.EVENTS_SCHEMA_VERSION >= 2
    assert Event.from_dict(line).data == {"action": "stop"}


def test_requested_new_types_and_fields_are_defined():
    assert {"disconnected", "endpoint_probe", "skipped", "checkpoint_skipped"} <= set(EVENT_TYPES)
    def names(t):
        return {f for f in ev.fields_of(t)}
    assert {"left_out", "samples"} <= names("minibatch")
    assert "left_out" in names("validation") and "left_out" in names("eval")
    assert {"attempt", "group"} <= names("proposal")


# -- a real training run conforms ----------------------------------------------------------------

def test_a_training_run_emits_only_events_that_conform(tmp_path):
    from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task
    from workbench.llm.models import Models
    from workbench.training.trainer import TrainConfig, Trainer

    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      config=TrainConfig(max_steps=2, batch_size=4, concurrency=2), run_dir=tmp_path / "run",
                      bus=EventBus(strict=True))
    seen = []
    trainer.bus.subscribe(seen.append)
    trainer.fit()
    assert {"run_started", "step_finished", "proposal", "validation", "run_finished"} <= {e.type for e in seen}
    assert [p for e in seen for p in problems(e)] == []


# -- emit sites in the code use defined types and fields -----------------------------------------

DEFINITIONS = {cls.__name__: name for name, cls in EVENT_TYPES.items()}


def emit_sites(tree: ast.AST) -> list[tuple[str, set[str], int]]:
    """Typed sites `Definition(field=...)` (a class from records/events.py) and the string forms
    `_emit("type", field=...)` and `Event("type", {...})`: (type, field names, line)."""
    sites = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in DEFINITIONS and not node.args:
            sites.append((DEFINITIONS[name], {k.arg for k in node.keywords if k.arg}, node.lineno))
        if not node.args or not _is_str(node.args[0]):
            continue
        if name in ("_emit", "emit_event"):
            sites.append((node.args[0].value, {k.arg for k in node.keywords if k.arg}, node.lineno))
        elif name == "Event" and len(node.args) > 1 and isinstance(node.args[1], ast.Dict):
            keys = {k.value for k in node.args[1].keys if k is not None and _is_str(k)}
            sites.append((node.args[0].value, keys, node.lineno))
    return sites


def test_every_emit_site_in_the_package_uses_a_defined_type_and_fields():
    bad, found = [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        for type_name, keys, line in emit_sites(ast.parse(path.read_text(encoding="utf-8"))):
            found += 1
            if type_name not in EVENT_TYPES:
                bad.append(f"{path.relative_to(ROOT)}:{line}: unknown event type {type_name!r}")
            else:
                bad += [f"{path.relative_to(ROOT)}:{line}: {type_name!r} has no field {k!r}"
                        for k in sorted(keys - ev.fields_of(type_name))]
    assert found >= 20  # the trainer's emit sites were found
    assert bad == []


def test_the_trainer_emits_typed_definitions_only():
    """Every emit in workbench/training builds its event's definition, so a misspelled field fails where
    it is written: no `emit("type", ...)` string form, no `Event(...)` built by hand."""
    untyped = []
    for path in sorted((PACKAGE / "training").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            hand_built = isinstance(node.func, ast.Name) and node.func.id == "Event"  # not threading.Event
            if hand_built or (name in ("_emit", "emit") and node.args and _is_str(node.args[0])):
                untyped.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert untyped == []


def test_a_misspelled_field_fails_where_the_event_is_written():
    from workbench.records.events import StepStarted
    with pytest.raises(TypeError, match="bacth"):
        StepStarted(epoch=0, bacth=["s1"])


# -- consumers read only defined fields ----------------------------------------------------------

DATA_NAMES = {"d", "data"}


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _event_types_tested(test: ast.AST) -> set[str]:
    """Event types named by `x.type == "t"`, `kind == "t"`, `x.type in ("a", "b")` inside a condition."""
    found = set()
    for node in ast.walk(test):
        if not isinstance(node, ast.Compare) or len(node.ops) != 1:
            continue
        subject = node.left
        if not ((isinstance(subject, ast.Attribute) and subject.attr == "type")
                or (isinstance(subject, ast.Name) and subject.id in ("kind", "event_type"))):
            continue
        right = node.comparators[0]
        if isinstance(node.ops[0], ast.Eq) and _is_str(right):
            found.add(right.value)
        elif isinstance(node.ops[0], ast.In) and isinstance(right, (ast.Tuple, ast.List, ast.Set)):
            found |= {e.value for e in right.elts if _is_str(e)}
    return found


def _is_data(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id in DATA_NAMES) or \
        (isinstance(node, ast.Attribute) and node.attr == "data")


def _reads(node: ast.AST) -> list[tuple[str, int]]:
    """`d["x"]`, `d.get("x")`, `e.data["x"]`, `e.data.get("x")` below `node`."""
    found = []
    for n in ast.walk(node):
        if isinstance(n, ast.Subscript) and _is_data(n.value) and _is_str(n.slice):
            found.append((n.slice.value, n.lineno))
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "get" \
                and _is_data(n.func.value) and n.args and _is_str(n.args[0]):
            found.append((n.args[0].value, n.lineno))
    return found


def _data_field(expr: ast.AST) -> str | None:
    """The event field an expression reads: `d["f"]`, `d.get("f")`, `e.data["f"]`, typed `d.f`; maybe `... or {}`."""
    if isinstance(expr, ast.BoolOp) and isinstance(expr.op, ast.Or):
        expr = expr.values[0]
    if isinstance(expr, ast.Subscript) and _is_data(expr.value) and _is_str(expr.slice):
        return expr.slice.value
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "get" \
            and _is_data(expr.func.value) and expr.args and _is_str(expr.args[0]):
        return expr.args[0].value
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id in DATA_NAMES:
        return expr.attr
    return None


def _nested_reads(node: ast.AST) -> list[tuple[str, str, int]]:
    """Reads inside a structured field: `d["summary"]["k"]`, or `s.get("k")` where `s = d.get("summary")`
    or `for s in d["samples"]`: (field, key, line)."""
    aliases: dict[str, str] = {}
    for n in ast.walk(node):
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
            bound, source = n.targets[0].id, n.value
        elif isinstance(n, (ast.For, ast.comprehension)) and isinstance(n.target, ast.Name):
            bound, source = n.target.id, n.iter
        else:
            continue
        field = _data_field(source)
        if field is not None:
            aliases[bound] = field
    found = []
    for n in ast.walk(node):
        receiver, key = None, None
        if isinstance(n, ast.Subscript) and _is_str(n.slice):
            receiver, key = n.value, n.slice.value
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "get" \
                and n.args and _is_str(n.args[0]):
            receiver, key = n.func.value, n.args[0].value
        if receiver is None:
            continue
        field = aliases.get(receiver.id) if isinstance(receiver, ast.Name) else _data_field(receiver)
        if field is not None:
            found.append((field, key, n.lineno))
    return found


def nested_fields(type_name: str, field: str) -> set[str] | None:
    """The keys a structured field of an event type defines; None when the field is not a Shape."""
    definition = EVENT_TYPES[type_name]
    if field not in ev.fields_of(type_name):
        return None
    nested = ev.shape_of(ev._hints(definition)[field])
    return None if nested is None else {f.name for f in ev._fields(nested).values()}


def consumer_reads(tree: ast.AST) -> list[tuple[frozenset[str], str, int]]:
    """Every read of an event field tied to event types: (types, field, line).

    Tied means inside an `_on_<type>` handler, or under a condition on the event's type (an `if`, a
    conditional expression, or a comprehension's filter).
    """
    found = []

    def tie(types: set[str], body: list[ast.AST]) -> None:
        types = {t for t in types if t in EVENT_TYPES} or types
        for node in body:
            found.extend((frozenset(types), key, line) for key, line in _reads(node))
        block = ast.Module(body=[n if isinstance(n, ast.stmt) else ast.Expr(n) for n in body], type_ignores=[])
        found.extend((frozenset(types), f"{field}.{key}", line) for field, key, line in _nested_reads(block))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("_on_") \
                and node.name[4:] in EVENT_TYPES:
            tie({node.name[4:]}, node.body)
        elif isinstance(node, (ast.If, ast.IfExp)):
            types = _event_types_tested(node.test)
            if types:
                tie(types, node.body if isinstance(node.body, list) else [node.body])
                tie(types, [node.test])  # `e.type == "decision" and e.data["x"]`
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            for gen in node.generators:
                types = set().union(*(_event_types_tested(c) for c in gen.ifs)) if gen.ifs else set()
                if types:
                    elements = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
                    tie(types, elements + gen.ifs)
    return found


def undefined_reads(tree: ast.AST, where: str) -> list[str]:
    bad = []
    for types, key, line in sorted(consumer_reads(tree), key=lambda r: (r[2], r[1])):
        unknown_types = sorted(t for t in types if t not in EVENT_TYPES)
        if unknown_types:
            bad.append(f"{where}:{line}: reads events of undefined type {unknown_types}")
        elif "." in key:
            field, inner = key.split(".", 1)
            shapes = [nested_fields(t, field) for t in types]
            if all(s is not None for s in shapes) and not any(inner in s for s in shapes):
                bad.append(f"{where}:{line}: reads {key!r}, which no {sorted(types)} event defines")
        elif not any(key in ev.fields_of(t) for t in types):
            bad.append(f"{where}:{line}: reads {key!r}, which no {sorted(types)} event defines")
    return bad


def consumer_sources() -> list[tuple[str, str]]:
    paths = [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "events.py"]
    sources = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in paths]
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8")).get("cells", [])
        for i, cell in enumerate(cells):
            if cell.get("cell_type") == "code":
                text = "".join(cell.get("source", []))
                text = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in text.split("\n"))
                sources.append((f"{nb.relative_to(ROOT)} cell {i}", text))
    return sources


def test_the_scanner_flags_a_read_of_a_field_no_event_defines():
    source = '''
def describe(kind, d):
    if kind == "proposal":
        return d["paramter"]
class View:
    def _on_minibatch(self, e, d):
        return d.get("left_out"), d.get("skipped")
ids = [e.data["proposal_id"] for e in events if e.type == "decision"]
bad = [e.data["who"] for e in events if e.type in ("decision", "update")]
def _on_forward(self, e, d):
    summary = d.get("summary") or {}
    return summary.get("sample_id"), summary.get("sampleid"), d["summary"]["stats"], d["graph"]["anything"]
def _on_selection(self, e, d):
    return [s.get("reason") for s in d["samples"]] + [s["chosen"] for s in d.samples]
'''
    bad = undefined_reads(ast.parse(source), "x.py")
    assert bad == ["x.py:4: reads 'paramter', which no ['proposal'] event defines",
                   "x.py:7: reads 'skipped', which no ['minibatch'] event defines",
                   "x.py:9: reads 'who', which no ['decision', 'update'] event defines",
                   "x.py:12: reads 'summary.sampleid', which no ['forward'] event defines",
                   "x.py:12: reads 'summary.stats', which no ['forward'] event defines",
                   "x.py:14: reads 'samples.chosen', which no ['selection'] event defines"]


def test_every_consumer_reads_only_fields_that_its_event_defines():
    bad, reads = [], 0
    for where, text in consumer_sources():
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue  # a notebook cell with shell syntax; not Python we can check
        reads += len(consumer_reads(tree))
        bad += undefined_reads(tree, where)
    assert reads >= 40  # the UI reducer, the CLI and the export were scanned
    nested = sum("." in key for where, text in consumer_sources() if where.startswith("workbench/")
                 for _, key, _ in consumer_reads(ast.parse(text)))
    assert nested >= 20  # and reads inside `summary` and `samples` were checked against their shapes
    assert bad == []


# -- the docs are generated from the definitions -------------------------------------------------

def test_events_md_is_up_to_date():
    current = ev.DOC_PATH.read_text(encoding="utf-8")
    assert ev.updated_doc(current) == current, "docs/EVENTS.md is stale: run python scripts/events_doc.py --write"
    for name in EVENT_TYPES:
        assert f"### {name}\n" in current


def test_events_md_check_fails_on_a_stale_copy(tmp_path, monkeypatch):
    stale = tmp_path / "EVENTS.md"
    stale.write_text(ev.DOC_PATH.read_text(encoding="utf-8").replace("### disconnected", "### gone"))
    monkeypatch.setattr(ev, "DOC_PATH", stale)
    assert ev.main(["--check"]) == 1
    assert ev.main(["--write"]) == 0 and ev.main(["--check"]) == 0
    assert "### disconnected\n" in stale.read_text()


def test_structured_fields_are_checked_and_filled_like_the_data():
    bus = EventBus(strict=True)
    seen = []
    bus.subscribe(seen.append)
    summary = {"sample_id": "s1", "inputs": {"q": "x"}, "target": "y", "prediction": "y", "score": 1.0,
               "status": "ok"}
    with pytest.raises(EventContractError, match=r"'summary' has unknown field 'sampel'"):
        bus.emit(Event("forward", {"split": "train", "phase": "train", "graph": None,
                                   "summary": {**summary, "sampel": 1}}))
    with pytest.raises(EventContractError, match=r"'samples'\[1\] lacks required field 'reason'"):
        bus.emit(Event("selection", {"samples": [{"sample_id": "a", "selected": True, "reason": "failed"},
                                                 {"sample_id": "b", "selected": False}]}))
    with pytest.raises(EventContractError, match=r"'samples'\[0\] field 'selected' = 'yes' is not bool"):
        bus.emit(Event("selection", {"samples": [{"sample_id": "a", "selected": "yes", "reason": ""}]}))
    bus.emit(Event("forward", {"split": "train", "phase": "train", "graph": None, "summary": summary}))
    assert seen[0].data["summary"]["error"] is None and seen[0].data["summary"]["seconds"] == 0.0
    assert "error" not in summary  # the emitter's dict is not changed


def test_a_notebook_may_define_and_emit_its_own_event_type():
    @ev.defines("test_note")
    class Note(ev.EventData):
        """A person's note during a run (defined by a test)."""
        text: str
        tags: list[str] = ev.doc("labels", [])

    try:
        bus = EventBus(strict=True)
        seen = []
        bus.subscribe(seen.append, {"test_note"})
        bus.emit(Note(text="looks good").event(step=4))
        bus.emit(Event("test_note", {"text": "again"}))
        assert [Note.of(e).text for e in seen] == ["looks good", "again"] and seen[1].data["tags"] == []
        assert seen[1].data["tags"] is not seen[0].data["tags"]
        with pytest.raises(EventContractError, match="unknown field 'txt'"):
            bus.emit(Event("test_note", {"txt": "typo"}))
    finally:
        del EVENT_TYPES["test_note"]


# callbacks named `_on_<something>` that are not event handlers (a dispatcher never looks them up)
NOT_EVENT_HANDLERS = {"event", "browser_msg"}


def test_every_event_handler_is_named_after_a_defined_event_type():
    """Views dispatch with getattr(self, "_on_" + event.type): a misspelt handler would never run."""
    bad = []
    for where, text in consumer_sources():
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        bad += [f"{where}:{node.lineno}: {node.name} handles no defined event type" for node in ast.walk(tree)
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("_on_")
                and node.name[4:] not in EVENT_TYPES and node.name[4:] not in NOT_EVENT_HANDLERS]
    assert bad == []
