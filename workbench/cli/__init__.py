"""The `workbench` command: `demo`, `train`, `runs`, `export` and `report`.

The CLI is one more subscriber of the trainer's events (docs/EVENTS.md): it shows progress on stderr
(workbench.records.progress), prints one line per finished step, and reads every number of its last screen
back from the run folder, so what it prints is what was recorded. `train` writes its own arguments
to `<run>/cli.json` (never a key: only the *name* of the variable holding it, and base URLs without
credentials), which is what lets `workbench train --resume RUN_DIR` rebuild the same run after a crash.

  spec.py               RunSpec, settings from defaults / --config / flags (type-checked), cli.json
  factory.py            a built-in task or the user's --module factory -> pipeline + splits
  running.py            one run: models (Models.from_env), trainer, progress, exports, last screen
  terminal_approval.py  --approval terminal
  last_screen.py        the report, the story of each proposal, where to look next
  commands.py           demo, train, runs, export, report
  main.py               argparse and the entry point (one-line errors, exit code 2)
"""
from .main import build_parser, main
from .spec import CLI_FILE, RunSpec

__all__ = ["CLI_FILE", "RunSpec", "build_parser", "main"]
