import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests import their shared helpers (scripted_tasks)


def hotpotqa_or_skip():
    """The shared HotpotQA file, or skip: it is public data read from ../shared/data (never copied
    into the repo), so a checkout without that folder skips the tests that need it, saying why."""
    import pytest
    from workbench.datasets import DatasetError, hotpotqa_path
    try:
        return hotpotqa_path()
    except DatasetError as exc:
        pytest.skip(f"shared HotpotQA file not available ({exc})")
