"""Benchmark: what the notebook dashboard costs the kernel, on a long synthetic run.

Prints measured numbers (not a test). The event stream is the widget tests' synthetic run
(tests/test_widgets.py: a pipeline of 2 x hops + 2 nodes, 3 samples a step, one proposal a step),
folded by the real reducers (workbench/ui/reducers/) with the real Graphviz layout.

1. Folding: events per second through `RunState.apply` (the funnel's thread; the trainer only
   appends to a queue).
2. One full push at the end: the time to build every view's traits, and their JSON size per view
   (the curves' plotly figures grow with the steps).
3. plotly.js: the bytes each page receives once (not once per curves view).

    python bench/dashboard.py [--steps 200] [--hops 14]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_widgets import Emitter, emit_step, start_run  # noqa: E402

from workbench.records.events import EventBus  # noqa: E402
from workbench.ui import assets  # noqa: E402
from workbench.ui.reducers import ALL_PARTS  # noqa: E402
from workbench.ui.state import RunState  # noqa: E402

VIEWS = ("controls", "graph", "samples", "curves", "review")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--hops", type=int, default=14, help="loop length: the graph has 2 x hops + 2 nodes")
    args = ap.parse_args(argv)

    bus, events = EventBus(strict=False), []
    bus.subscribe(events.append)
    emit = Emitter(bus)
    start_run(emit)
    for step in range(1, args.steps + 1):
        emit_step(emit, step, hops=args.hops, approve=step % 3 != 0)

    from workbench.engine.graph import render_svg
    state = RunState(prices={"task": (0.15, 0.6)}, svg_renderer=render_svg)
    t0 = time.perf_counter()
    for e in events:
        state.apply(e)
    fold = time.perf_counter() - t0
    print(f"fold: {len(events):,} events of a {args.steps}-step run, {2 * args.hops + 2} nodes: "
          f"{fold:.2f} s, {len(events) / fold:,.0f} events/s, {1e6 * fold / len(events):.1f} µs/event")

    state.graph.selected_node = "query#2"
    state.traits("graph", {"layout"})  # lay out once (Graphviz), as the first push does
    t0 = time.perf_counter()
    sizes = {view: len(json.dumps(state.traits(view, set(ALL_PARTS)))) for view in VIEWS}
    push = time.perf_counter() - t0
    print(f"one full push (every view, every part): {1000 * push:.1f} ms")
    for view in VIEWS:
        print(f"  {view:9s} {sizes[view] / 1024:8.1f} KiB")
    t0 = time.perf_counter()
    for _ in range(10):
        state.traits("curves", {"curves"})
    print(f"curves traits (plotly figures of {args.steps} steps): {100 * (time.perf_counter() - t0):.1f} ms per push")
    print(f"plotly.js sent once per page: {len(assets.plotly_js()) / 2**20:.2f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
