"""Bad input to the `workbench` command is refused in one line (file, key, value), exit code 2, no traceback.

These run `workbench.cli.main(argv)` in this process: every case fails before a model is needed.
"""
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.cli.spec import RunSpec, load_spec, save_spec
from workbench.redact import forget_secrets, register_secret

TESTS = Path(__file__).parent


def refused(capsys, *argv):
    """Run main(argv); return its one stderr line (after checking the exit code and that no traceback shows)."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench: error: "), err
    return lines[0]


@pytest.mark.parametrize("name, text, message", [
    ("bs.json", '{"task": "counting", "batch_size": 2.5}', "bs.json: batch_size must be an integer, not 2.5"),
    ("steps.yaml", "task: counting\nmax_steps: 2.5\n", "steps.yaml: max_steps must be an integer, not 2.5"),
    ("ten.json", '{"task": "counting", "max_steps": "ten"}', "ten.json: max_steps must be an integer, not 'ten'"),
    ("seed.yaml", "task: counting\nseed: yes\n", "seed.yaml: seed must be an integer, not True"),
    ("train.json", '{"task": "counting", "train": [4]}', "train.json: train must be an integer or null, not [4]"),
    ("gain.yaml", "task: counting\nmin_gain: fast\n", "gain.yaml: min_gain must be a number, not 'fast'"),
    ("cache.json", '{"task": "counting", "cache": "no"}', "cache.json: cache must be true or false, not 'no'"),
    ("task.json", '{"task": 7}', "task.json: task must be a string or null, not 7"),
    ("src.json", '{"task": "counting", "source": [1, 2]}', "src.json: source must be a list of strings, not [1, 2]"),
    ("appr.json", '{"task": "counting", "approval": "maybe"}',
     "appr.json: approval must be one of auto, terminal, not 'maybe'"),
    ("fold.json", '{"task": "counting", "fold_system": "sometimes"}',
     "fold.json: fold_system must be one of auto, on, off, not 'sometimes'"),
    ("opt.yaml", "task: counting\noptimize: some\n", "opt.yaml: optimize must be"),
    ("typo.json", '{"task": "counting", "max_step": 2}', "typo.json: unknown setting 'max_step'"),
    ("list.json", '[1, 2]', "list.json: expected a mapping of settings, not list"),
    ("torn.json", '{"task": "coun', "torn.json could not be parsed: Unterminated string"),
    ("tab.yaml", "task: [counting\n", "tab.yaml could not be parsed"),
])
def test_a_config_value_of_the_wrong_type_is_named_with_its_file_and_key(tmp_path, capsys, monkeypatch, name,
                                                                        text, message):
    monkeypatch.chdir(tmp_path)
    Path(name).write_text(text, encoding="utf-8")
    assert message in refused(capsys, "train", "--config", name)


def test_a_config_file_that_is_not_utf8_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("latin1.yaml").write_bytes("task: counting\n# réglages\n".encode("latin-1"))
    line = refused(capsys, "train", "--config", "latin1.yaml")
    assert "latin1.yaml is not UTF-8 text (byte b'\\xe9' at offset 18)" in line


def test_flags_are_checked_like_the_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "batch_size must be at least 1, not 0" in refused(capsys, "train", "--task", "counting",
                                                             "--batch-size", "0")
    Path("steps.json").write_text('{"task": "counting", "max_steps": 0}')
    assert "steps.json: max_steps must be at least 1, not 0" in refused(capsys, "train", "--config", "steps.json")


@pytest.mark.parametrize("source, message", [
    ("raise RuntimeError('no database here')\n", "raised RuntimeError: no database here"),
    ("import a_module_that_does_not_exist_anywhere\n",
     "raised ModuleNotFoundError: No module named 'a_module_that_does_not_exist_anywhere'"),
    ("def make(:\n", "raised SyntaxError: invalid syntax (line 1)"),
    ("def make():\n    return {}['pipeline']\n", "make() raised KeyError: 'pipeline'"),
    ("def make():\n    return 42\n", "must return a workbench.tasks.Task or a dict"),
])
def test_a_module_that_fails_is_named_with_its_error(tmp_path, capsys, source, message):
    module = tmp_path / "user_pipeline.py"
    module.write_text(source)
    line = refused(capsys, "train", "--module", f"{module}:make")
    assert "user_pipeline" in line and message in line


def test_a_package_error_with_several_lines_is_still_one_line(tmp_path, capsys):
    module = tmp_path / "loud.py"
    module.write_text("from workbench.tasks.datasets import DatasetError\n"
                      "def make():\n    raise DatasetError('rows.jsonl line 3:\\n  missing field target')\n")
    line = refused(capsys, "train", "--module", f"{module}:make")
    assert line == "workbench: error: rows.jsonl line 3: missing field target"


def write_run_folder(run_dir: Path, cli_text: bytes) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text('{"task": "counting"}')
    (run_dir / "cli.json").write_bytes(cli_text)


@pytest.mark.parametrize("cli_text, message", [
    (b'{"task": "counting", "tra', "cli.json is damaged (JSONDecodeError"),
    (b"\x00\x81\xff binary", "cli.json is damaged (UnicodeDecodeError"),
    (b'["task"]', "cli.json is damaged: expected a mapping, found list"),
    (b'{"task": "counting", "train": "many"}', "cli.json: train must be an integer or null, not 'many'"),
    (b'{"task": "counting", "config": {"max_steps": 1.5}}', "cli.json: max_steps must be an integer, not 1.5"),
])
def test_a_torn_or_tampered_cli_json_on_resume_is_one_line(tmp_path, capsys, cli_text, message):
    write_run_folder(tmp_path / "run", cli_text)
    line = refused(capsys, "train", "--resume", tmp_path / "run")
    assert message in line and str(tmp_path / "run") in line


def test_cli_json_holds_no_credentials(tmp_path):
    forget_secrets()
    try:
        register_secret("sk-registered-secret-42")
        spec = RunSpec(task="counting", base_url="https://alice:pa55word-xyz@llm.example.com:8443/v1?x=1",
                       key_env="MY_KEY_VAR", model="echo sk-registered-secret-42")
        save_spec(spec, tmp_path)
        text = (tmp_path / "cli.json").read_text()
        assert "pa55word-xyz" not in text and "alice" not in text and "sk-registered-secret-42" not in text
        loaded = load_spec(tmp_path)
        assert loaded.base_url == "https://llm.example.com:8443/v1?x=1"
        assert loaded.key_env == "MY_KEY_VAR" and loaded.model == "echo <redacted>"
    finally:
        forget_secrets()


def test_fold_system_flag_accepts_on_off_and_their_spellings(tmp_path, monkeypatch):
    from workbench.cli.main import build_parser
    from workbench.cli.spec import spec_from_args

    parser = build_parser()
    for given, expected in [("on", "on"), ("1", "on"), ("true", "on"), ("off", "off"), ("0", "off"),
                            ("auto", "auto")]:
        args = parser.parse_args(["train", "--task", "counting", "--fold-system", given])
        assert spec_from_args(args, {}).fold_system == expected
    assert spec_from_args(parser.parse_args(["train", "--task", "counting"]), {}).fold_system == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--task", "counting", "--fold-system", "sometimes"])


def test_training_flags_reach_the_spec_and_the_demo_defaults_give_way(tmp_path):
    from workbench.cli.commands import DEMO_DEFAULTS
    from workbench.cli.main import build_parser
    from workbench.cli.spec import spec_from_args

    args = build_parser().parse_args(["demo", "--max-proposals", "3", "--optimize", "joint", "--steps", "1"])
    spec = spec_from_args(args, DEMO_DEFAULTS)
    assert (spec.config["max_proposals"], spec.config["optimize"], spec.config["max_steps"]) == (3, "joint", 1)
    assert spec.config["batch_size"] == DEMO_DEFAULTS["config"]["batch_size"] and spec.task == "counting"


def test_train_only_names_must_exist_and_the_others_are_frozen(tmp_path, capsys):
    from workbench.cli.factory import build

    line = refused(capsys, "train", "--task", "counting", "--train-only", "count.instructions")
    assert ("--train-only: counting has no parameter 'count.instructions'; its parameters: count.instruction, "
            "count.output_format") in line
    built = build(RunSpec(task="counting", train=2, val=2, test=2, train_only=["count.output_format"]))
    assert {n: p.trainable for n, p in built.pipeline.named_parameters().items()} == {
        "count.instruction": False, "count.output_format": True}


def test_the_demo_trains_one_parameter_of_the_counting_task_unless_told_otherwise():
    from workbench.cli.commands import DEMO_DEFAULTS, DEMO_TRAIN_ONLY
    from workbench.cli.main import build_parser
    from workbench.cli.spec import spec_from_args

    assert DEMO_TRAIN_ONLY["counting"] == ["count.instruction"]
    args = build_parser().parse_args(["demo", "--train-only", "count.output_format"])
    assert spec_from_args(args, DEMO_DEFAULTS).train_only == ["count.output_format"]
