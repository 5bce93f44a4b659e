"""Run records: the event contract and bus, the run folder store, the evaluation memo, and the read side
built on them (results DataFrames, the HTML report, export, chart specifications, progress, sinks)."""
