"""The engine of LLM-AutoDiff: parameters, prompts, traced graphs, nodes, pipelines, the forward runner,
eval functions (the loss) and the backward rules. It knows nothing of training runs or their records."""
