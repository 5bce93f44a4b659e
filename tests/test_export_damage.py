"""Audit of issue 9 ("Damaged files") for exports: a damaged config.json or summary.json costs the
export its details, with a warning, never the trained values (they come from the checkpoint).

Before, `workbench export RUN` refused with "summary.json is damaged" although every checkpoint
was intact: the one file a person needs after a crash was the one they could not get.
"""
from __future__ import annotations

import pytest

from workbench.errors import DamagedFileWarning, WorkbenchError
from workbench.records.export import build_export, export_prompts, load_export

from test_store_damage import make_run


@pytest.mark.parametrize("name", ["summary.json", "config.json"])
@pytest.mark.parametrize("damage", [b"\x00\xff binary", b'{"status": "compl', b"[1, 2]"])
def test_a_damaged_summary_or_config_still_exports_the_checkpointed_values(tmp_path, name, damage):
    store = make_run(tmp_path)
    store.write_summary({"status": "completed", "steps": 2, "best_val": 0.2})
    (store.path / name).write_bytes(damage)
    with pytest.warns(DamagedFileWarning, match=name):
        path = export_prompts(store.path, tmp_path / "prompts.json")
    assert load_export(path) == {"a.b": "v2"}
    with pytest.warns(DamagedFileWarning):
        run = build_export(store.path)["run"]
    if name == "summary.json":
        assert run["status"] == "unknown (summary.json is damaged)"  # not "completed", not "running"
        assert run["best_val"] == 0.2  # from the checkpoint
    else:
        assert run["status"] == "completed" and run["task"] == ""


def test_a_folder_that_is_not_a_run_is_still_an_error(tmp_path):
    with pytest.raises(WorkbenchError, match="is .* a run folder"):
        build_export(tmp_path)
