"""What a person teaches from the dashboard (issue 16): a reason with a decision, and feedback on a
sample's output, a node's output for a sample, or a parameter.

The browser's request is checked here and handed to the trainer's own API (`trainer.decide(...,
reason=...)`, `trainer.feedback(...)`), the one a notebook cell and the terminal use too. A refusal
(a leaked training target, an unknown sample, no text) comes back to the person with the trainer's
reason; the text stays in their box.
"""
from __future__ import annotations

import logging
from typing import Any

from ..errors import WorkbenchError
from ..redact import redact

log = logging.getLogger(__name__)

RESULT = "feedback_result"


def decision_reason(msg: dict) -> str | None:
    """The reason typed beside the decision buttons, or None (an empty box is no reason)."""
    reason = msg.get("reason")
    return reason if isinstance(reason, str) and reason.strip() else None


def feedback_target(msg: dict) -> dict[str, str | None]:
    """sample_id / node / parameter of a feedback request: non-empty strings, else None."""
    def text(key: str) -> str | None:
        value = msg.get(key)
        return value if isinstance(value, str) and value != "" else None
    return {"sample_id": text("sample_id"), "node": text("node"), "parameter": text("parameter")}


def describe(target: dict[str, str | None]) -> str:
    """Where feedback goes, in words (the browser shows it with the answer)."""
    if target["parameter"] is not None:
        return f"on parameter {target['parameter']}"
    if target["node"] is not None:
        return f"on {target['node']}'s output for sample {target['sample_id']}"
    return f"on the output of sample {target['sample_id']}"


def send_feedback(trainer: Any, msg: dict) -> dict[str, Any]:
    """Give the person's feedback to the trainer; the answer the browser shows, by `request_id`."""
    answer: dict[str, Any] = {"type": RESULT, "request_id": str(msg.get("request_id") or ""), "ok": False,
                              "reason": "", "where": ""}
    text = msg.get("text")
    target = feedback_target(msg)
    if not isinstance(text, str) or not text.strip():
        return dict(answer, reason="write some feedback first")
    if trainer is None or not callable(getattr(trainer, "feedback", None)):
        return dict(answer, reason="this dashboard follows a run it cannot teach (no trainer)")
    if all(v is None for v in target.values()):
        return dict(answer, reason="choose a sample, a node or a parameter first")
    try:
        trainer.feedback(text, **target)
    except WorkbenchError as exc:  # refused (a leak, an unknown target): the trainer says why
        return dict(answer, reason=redact(str(exc)))
    except Exception as exc:  # the person's text stays in the box; the notebook log has the traceback
        log.exception("the trainer could not take the person's feedback")
        return dict(answer, reason=redact(f"the trainer could not take it ({type(exc).__name__}: {exc})"))
    return dict(answer, ok=True, where=describe(target))
