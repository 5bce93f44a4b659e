import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests import their shared helpers (scripted_tasks)


import os  # noqa: E402

from hypothesis import settings  # noqa: E402

# Property tests draw their examples from a fixed seed by default, so a CI run is reproducible and a red
# build means a code change, not a lucky draw. To hunt for new counterexamples, set
# WORKBENCH_HYPOTHESIS=explore (random draws; loop it with `--hypothesis-seed=N`); fix what it finds and
# add the case as an @example.
settings.register_profile("reproducible", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("explore" if os.environ.get("WORKBENCH_HYPOTHESIS") == "explore" else "reproducible")
