"""Property-based tests of the export loader: any values read back exactly in every format, and any
damaged or odd file gives a `ConfigError` naming it (or values), never another exception."""
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from workbench.errors import ConfigError
from workbench.records.export import load_export, render_json, render_markdown, render_yaml

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RENDER = {"json": render_json, "yaml": render_yaml, "md": render_markdown}

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,30}", fullmatch=True)
# any text a prompt may hold, lone surrogates included: they must not crash the writer or the reader
values = st.text(st.characters(codec=None, exclude_categories=()), max_size=300) | \
    st.lists(st.sampled_from(["```", "````", "## `a.b`", "```text", "\n", "\r\n", "\t", "- x: y", "|", ">",
                              "---", "...", "'", '"', "#", "é", "\u2028", "\u2029", "\x85", "\x00", "\ud800", "  "]),
             max_size=12).map("".join)


def document(params: dict[str, str]) -> dict:
    return {"format": "workbench-prompts/1", "exported_at": "2026-01-01T00:00:00+00:00", "run": None,
            "parameters": [{"name": n, "role": "instruction", "description": "", "trainable": True, "value": v,
                            "provenance": {"source": "initial", "step": None, "run_id": None}}
                           for n, v in params.items()]}


def write(text_or_bytes, suffix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="export-prop-"))
    path = folder / f"prompts{suffix}"
    if isinstance(text_or_bytes, bytes):
        path.write_bytes(text_or_bytes)
    else:
        path.write_text(text_or_bytes, encoding="utf-8", errors="surrogatepass")
    return path


def readable(value: str) -> str:
    """What a value becomes after a round trip through a UTF-8 file: lone surrogates are escaped."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def load_or_config_error(path: Path, fmt: str | None = None):
    try:
        values = load_export(path, fmt)
    except ConfigError as exc:
        assert str(path) in str(exc), exc  # the message says which file
        return None
    assert isinstance(values, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
    return values


@SETTINGS
@given(st.dictionaries(names, values, min_size=1, max_size=4), st.sampled_from(["json", "yaml", "md"]))
@example({"A": "\x85"}, "yaml")  # NEL: PyYAML read it back as a space from a single-quoted scalar
@example({"A": "a\x85\nb\u2028c\u2029"}, "yaml")
def test_every_value_reads_back_exactly_in_every_format(params, fmt):
    from workbench.records.store import write_text_atomic
    path = write("", f".{fmt}")
    write_text_atomic(path, RENDER[fmt](document(params)))
    loaded = load_export(path)
    if fmt == "md":  # Markdown cannot escape a lone surrogate: it is kept as its \\udXXX spelling
        assert loaded == {n: readable(v) for n, v in params.items()}
    else:  # JSON and YAML escape it, and read back the very same string
        assert loaded == params


@SETTINGS
@given(st.binary(max_size=400), st.sampled_from([".json", ".yaml", ".md"]))
def test_any_bytes_give_values_or_a_config_error(data, suffix):
    load_or_config_error(write(data, suffix))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4),
                           max_leaves=20)
odd_documents = json_values | st.fixed_dictionaries({"parameters": json_values}) | \
    st.fixed_dictionaries({"parameters": st.lists(st.dictionaries(st.sampled_from(["name", "value", "role"]),
                                                                  json_values, max_size=3), max_size=3)})


@SETTINGS
@given(odd_documents, st.sampled_from(["json", "yaml"]))
def test_odd_but_wellformed_documents_give_values_or_a_config_error(doc, fmt):
    import yaml
    text = json.dumps(doc) if fmt == "json" else yaml.safe_dump(doc)
    load_or_config_error(write(text, f".{fmt}"))


markdown_lines = st.lists(st.sampled_from(["## `a.b`", "## `x`", "```text", "````text", "```", "````", "text",
                                           "", "# Tuned prompts", "## a.b", "```json", "\r"]), max_size=15)


@SETTINGS
@given(markdown_lines)
def test_markdown_fragments_give_values_or_a_config_error(lines):
    load_or_config_error(write("\n".join(lines), ".md"))


def test_a_markdown_value_without_its_closing_fence_names_the_parameter_and_the_file(tmp_path):
    path = tmp_path / "p.md"
    path.write_text("## `a.b`\n\n```text\nhello\n")
    with pytest.raises(ConfigError, match=r"'a.b'.*closing ``` fence") as caught:
        load_export(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("text", ["!!python/object/apply:os.system ['echo pwned']", "a: &x [*x]",
                                  "parameters: !!binary aGVsbG8=", "{parameters: {a: {value: 1}}}"])
def test_hostile_yaml_is_refused_as_a_config_error(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert load_or_config_error(path) is None
