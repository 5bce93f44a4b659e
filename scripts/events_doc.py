"""Regenerate (--write) or check (--check) docs/EVENTS.md from the definitions in workbench/records/events.py.

    .venv/bin/python scripts/events_doc.py --write
"""
import sys

from workbench.records.events import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
