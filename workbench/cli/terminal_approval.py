"""`--approval terminal`: a person accepts, rejects (with an optional reason) or edits each proposal,
and may give feedback on the proposal's parameter first (`Trainer.feedback`: its next optimizer call reads it)."""
from __future__ import annotations

import sys
from typing import Callable, TextIO

from ..errors import FeedbackRefused, RunStopped
from ..records.progress import Progress, fmt_score
from ..redact import redact


def terminal_approval(progress: Progress | None, stdin: TextIO | None = None, err: TextIO | None = None, *,
                      feedback: Callable[[str, str], object] | None = None):
    """A CallbackApproval that asks on the terminal: accept, reject, or edit the proposed text.

    `feedback(text, parameter)` (the trainer's `feedback` on a parameter) adds a fourth answer, [f]eedback."""
    from ..training.approval import CallbackApproval, Decision

    stdin, err = stdin or sys.stdin, err or sys.stderr

    def write(text: str) -> None:
        err.write(redact(text))
        err.flush()

    piped = not (getattr(stdin, "isatty", None) and stdin.isatty())  # a terminal echoes what is typed; a pipe not

    def read_line(prompt: str) -> str:
        write(prompt)
        line = stdin.readline()
        if not line:
            if prompt:
                write("\n")  # what comes next starts on its own line, not after the question
            raise RunStopped("stdin closed while a proposal waited for a decision")
        if piped and prompt:
            write(line if line.endswith("\n") else line + "\n")  # the transcript shows each answer
        return line.rstrip("\n")

    def ask_reason() -> str | None:
        """Why the person rejects (empty allowed): every later optimizer call for the parameter sees it."""
        try:
            reason = read_line("Why? (the optimizer reads it; Enter to skip) ").strip()
        except RunStopped:  # stdin closed: the reject stands without a reason; the next question stops
            return None
        return reason or None

    def give_feedback(parameter: str) -> None:
        """The person's words on the parameter, for its next optimizer call (this step's next attempt)."""
        text = read_line(f"Feedback on {parameter} (its optimizer reads it): ").strip()
        try:
            feedback(text, parameter)  # type: ignore[misc]
        except FeedbackRefused as refused:
            write(f"{refused}\n")
        else:
            write(f"noted: the next proposal for {parameter} reads it\n")

    def ask(pending) -> Decision:
        if progress is not None:
            progress.pause()
        write(f"\nProposal {pending.proposal_id} for {pending.parameter} "
              f"(minibatch {fmt_score(pending.minibatch_before)} -> {fmt_score(pending.minibatch_after)})\n"
              f"--- current\n{pending.old}\n+++ proposed\n{pending.new}\n")
        question = "[a]ccept, [r]eject, [e]dit or [f]eedback? " if feedback else "[a]ccept, [r]eject or [e]dit? "
        while True:
            answer = read_line(question).strip().lower()
            if feedback is not None and answer in ("f", "feedback"):
                give_feedback(pending.parameter)
                continue
            if answer in ("a", "accept", "y", "yes"):
                return Decision("accept", "person")
            if answer in ("r", "reject", "n", "no"):
                return Decision("reject", "person", reason=ask_reason())
            if answer in ("e", "edit"):
                write("Type the new value; end with a line holding only a dot (.)\n")
                lines = []
                while (line := read_line("")) != ".":
                    lines.append(line)
                text = "\n".join(lines)
                if text.strip():
                    return Decision("edit", "person", text=text)
                write("empty value; try again\n")

    return CallbackApproval(ask)
