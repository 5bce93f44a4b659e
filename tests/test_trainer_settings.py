"""Settings and splits that cannot work are refused when the Trainer is built, before a run folder
exists (a limit of 0 calls used to create a folder, stop at once and leave nothing to export)."""
import math

import pytest

from workbench.tasks.datasets import Example
from workbench.errors import ConfigError
from workbench.llm.models import Models
from workbench.training.trainer import TrainConfig, Trainer

from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward_model, same_text, task


@pytest.mark.parametrize("setting, value, says", [
    ("pass_threshold", 2, "in [0, 1]"), ("min_gain", math.nan, "in [0, 1]"), ("max_error_share", 5, "share"),
    ("max_calls", 0, "at least 1"), ("max_calls", -5, "at least 1"), ("max_tokens", 0, "at least 1"),
    ("max_seconds", -1, "positive"), ("max_seconds", 0, "positive"), ("patience", 0, "at least 1"),
    ("num_demos", -1, "0 or more"), ("backprop_threshold", 1.5, "in [0, 1]"),
])
def test_a_setting_out_of_range_is_refused_naming_it(setting, value, says):
    with pytest.raises(ConfigError, match=rf"{setting} must be .*{says}.*not {value!r}".replace("[", r"\[")
                       .replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**{setting: value})


def test_limits_in_range_are_kept():
    config = TrainConfig(max_calls=1, max_tokens=10, max_seconds=0.5, pass_threshold=0.5, min_gain=0.0)
    assert (config.max_calls, config.max_seconds, config.pass_threshold) == (1, 0.5, 0.5)


def test_repeated_sample_ids_are_refused_before_a_run_folder_exists(tmp_path):
    twin = Example(VAL[0].id, VAL[1].input, VAL[1].target, {})
    models = Models.scripted(task, backward_model().respond, Optimizer())
    with pytest.raises(ConfigError, match=rf"val split \['{VAL[0].id}'\] occur more than once"):
        Trainer(Shout(), TRAIN, [*VAL, twin], TEST, same_text, models, runs_root=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())
