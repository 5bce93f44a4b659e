"""Secrets are masked by value in everything the run store and exports write; names are not secrets."""
import json

import pytest

from workbench import LLMCall, Parameter, Pipeline
from workbench.errors import WorkbenchError
from workbench.records.events import Event
from workbench.records.export import build_export, export_prompts, load_export
from workbench.llm.models import Models
from workbench.redact import forget_secrets, register_secret
from workbench.records.store import RunStore, write_text_atomic
from workbench.testing import OpenAITestServer
from workbench.training.trainer import TrainConfig, Trainer

from scripted_tasks import TEST, TRAIN, VAL, backward, same_text, task

KEY = "sk-test-Zq8vV2mN4pL6"


@pytest.fixture(autouse=True)
def clean_registry():
    forget_secrets()
    yield
    forget_secrets()


def every_file_text(folder):
    return "\n".join(p.read_bytes().decode("utf-8") for p in sorted(folder.rglob("*")) if p.is_file())


class Login(Pipeline):
    """A legal pipeline whose parameter names look like credentials to a name-based scrub."""

    def __init__(self):
        self.password = Parameter("login.password", "Repeat the word.", description="how to write the word")
        self.api_key = Parameter("login.api_key", "(unused)", trainable=False)
        self.node = LLMCall("login", "{{password}}\nWord: {{word}}", [self.password])

    def forward(self, word):
        return self.node(word=word)


def optimizer(messages):
    return "<PROPOSAL>Repeat the word in UPPERCASE letters.</PROPOSAL>"


def test_a_parameter_named_password_round_trips_through_checkpoint_and_resume(tmp_path):
    run_dir = tmp_path / "run"
    config = TrainConfig(max_steps=2, batch_size=4, concurrency=2)
    Trainer(Login(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, optimizer), config=config,
            run_dir=run_dir).fit()
    state = RunStore(run_dir).latest_checkpoint()
    assert state["parameters"]["login.password"]["value"] == "Repeat the word in UPPERCASE letters."
    assert state["parameters"]["login.api_key"]["value"] == "(unused)"
    pipeline = Login()
    resumed = Trainer(pipeline, TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, optimizer),
                      config=TrainConfig(max_steps=3, batch_size=4, concurrency=2), run_dir=run_dir, resume=True)
    assert pipeline.password.value == "Repeat the word in UPPERCASE letters."
    resumed.fit()
    assert "<redacted>" not in every_file_text(run_dir)
    values = load_export(export_prompts(run_dir, tmp_path / "prompts.json"))
    assert values["login.password"] == "Repeat the word in UPPERCASE letters."


def test_a_registered_secret_is_masked_in_every_file_of_the_run(tmp_path):
    register_secret(KEY)
    store = RunStore.create(tmp_path / "run", {"task": "t", "models": {"task": f"model-{KEY}"}})
    store.on_event(Event("skipped", {"stage": "backward", "parameter": "a.b", "node_id": "n", "sample_id": "s",
                                     "error": f"401 Incorrect API key provided: {KEY}"}))
    store.on_event(Event("control", {"action": "stop", KEY: 1}))  # keys of mappings too
    store.write_checkpoint(1, {"parameters": {"a.b": {"name": "a.b", "value": f"say {KEY}"}}})
    store.write_summary({"status": "failed", "error": f"LLMCallError: {KEY}"})
    write_text_atomic(tmp_path / "run" / "notes.md", f"key {KEY}")
    text = every_file_text(tmp_path / "run")
    assert KEY not in text and text.count("<redacted>") >= 6


def test_exports_mask_secrets_by_value_in_every_format(tmp_path):
    register_secret(KEY)
    pipeline = Login()
    pipeline.password.value = f"Use {KEY} to log in."
    assert KEY not in json.dumps(build_export(pipeline))
    for name in ("p.json", "p.yaml", "p.md"):
        text = export_prompts(pipeline, tmp_path / name).read_text(encoding="utf-8")
        assert KEY not in text and "login.password" in text and "login.api_key" in text


def test_a_key_echoed_in_an_endpoint_error_never_reaches_the_run_folder(tmp_path, capsys):
    """Through the real openai SDK: the endpoint answers 401 and echoes the wrong key it was sent."""
    with OpenAITestServer(responder=task, api_key="the-right-key-123456") as server:
        models = Models.from_endpoint(server.base_url, "test-model", api_key=KEY, cache=None)
        trainer = Trainer(Login(), TRAIN, VAL, TEST, same_text, models, run_dir=tmp_path / "run",
                          config=TrainConfig(max_steps=1, batch_size=4, concurrency=2))
        with pytest.raises(WorkbenchError):
            trainer.fit()
        assert server.request_count >= 1
    text = every_file_text(tmp_path / "run")
    summary = RunStore(tmp_path / "run").summary()
    assert summary["status"] == "failed" and summary["error"]
    assert KEY not in text
    assert "Incorrect API key provided: <redacted>" in text  # the message itself is kept, masked
