"""Test helpers for the public benchmark data in ../shared/data (never copied into the repo)."""
import pytest

from workbench.tasks.datasets import DatasetError, hotpotqa_path


def hotpotqa_or_skip():
    """The shared HotpotQA file, or skip: it is public data read from ../shared/data (never copied
    into the repo), so a checkout without that folder skips the tests that need it, saying why."""
    try:
        return hotpotqa_path()
    except DatasetError as exc:
        pytest.skip(f"shared HotpotQA file not available ({exc})")
