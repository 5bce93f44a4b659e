"""Hostile text the project's own tests put in every place a person reads (issue 20), beside the
markup payloads of test_widgets.PAYLOAD and test_report.IMG / SCRIPT: text that must be shown as
exactly what it is, never run, typeset or reordered.
"""
RLO = "\u202e"
# a sample id holding a right-to-left override: on screen it reads "s6exe.png" unless the override is shown
RLO_ID = f"s6{RLO}gnp.exe"
RLO_SHOWN = "s6\u27e8U+202E\u27e9gnp.exe"       # what a reader must see instead
ZERO_WIDTH_NAME = "answer\u200b.instruction"     # looks like answer.instruction
DOLLARS = "costs $x$ and $y$"                     # MathJax would typeset both as LaTeX
# markup in a model role's name and in a task's name (plotly draws <a> and <b> in legends)
ROLE = '<a href="javascript:window.__xss=3"><b>task</b></a>'
TASK = '<b>shout</b> <img src=x onerror="window.__xss=4">'


def train_hostile_run(root):
    """A finished run under `root`/runs/run whose first sample id holds the override, whose task model
    is named ROLE and answers with DOLLARS, and whose task is named TASK; returns its folder."""
    from workbench.tasks.datasets import Example
    from workbench.llm.models import Models
    from workbench.llm.scripted import ScriptedModel
    from workbench.llm.usage import UsageMeter
    from workbench.training.trainer import TrainConfig, Trainer

    from scripted_tasks import TEST, VAL, Optimizer, Shout, backward, same_text, task

    def hostile_task(messages):
        return f"{task(messages)} {DOLLARS}"

    train = [Example(RLO_ID, {"word": "apple"}, "APPLE", {})] + \
        [Example(f"tr-{w}", {"word": w}, w.upper(), {}) for w in ("river", "stone", "cloud")]
    usage = UsageMeter()  # one meter for the three models, as Models.scripted shares it
    models = Models(ScriptedModel(hostile_task, role=ROLE, usage=usage),
                    ScriptedModel(backward, role="backward", usage=usage),
                    ScriptedModel(Optimizer(), role="optimizer", usage=usage))
    folder = root / "runs" / "run"
    Trainer(Shout(), train, VAL, TEST, same_text, models, config=TrainConfig(max_steps=1, batch_size=4, concurrency=1),
            run_dir=folder, task=TASK).fit()
    return folder
