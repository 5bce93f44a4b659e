"""Training targets stay out of prompts.

An optimizer that sees failed samples may "fix" them by writing their answers into the prompt.
That scores well on the minibatch and means nothing on new data, so a proposal that contains a
training target verbatim is refused before any validation. Only distinctive targets count: at
least 4 characters, not a common English word, and not a class label (a target shared by several
training samples, like TREC's "DESC", is a category the prompt may legitimately name). A target
that the current value already contains is not a new leak (an output format listing the labels).
"""
from __future__ import annotations

import re
from typing import Any, Iterable

LEAK_REASON = "leaks a training target"
MIN_TARGET_CHARS = 4

# the most frequent English words of 4+ letters: a target like "none", "true" or "after" says nothing
COMMON_WORDS = frozenset("""
able about above across after again against almost alone along already also although always among
another answer anything around away back because become been before behind being below best better
between both bring call came cannot case change close come could correct didn does done down each
early else enough even ever every example false fact feel few find first five four from full gave
give goes going good great half hand have having head help here high home however idea into just keep
kind know large last later least left less like line little long look made make many maybe more most
much must name near need never next nine none nothing number often once only open other over part
people place point quite rather really right said same school seem seven several should show side
since small some something sometimes still such sure take tell than that their them then there these
they thing think this those though three through time today together told took true turn under unknown
until upon used very want water well went were what when where which while white whole will with
within without word words work world would write year years your zero yes
""".split())


def _normal(text: str) -> str:
    return " ".join(str(text).lower().split())


def distinctive_targets(targets: Iterable[Any]) -> list[str]:
    """Targets long and rare enough that finding one in a prompt means it was copied there."""
    counts: dict[str, int] = {}
    for target in targets:
        t = _normal(target)
        counts[t] = counts.get(t, 0) + 1
    return sorted(t for t, n in counts.items()
                  if n == 1 and len(t) >= MIN_TARGET_CHARS and t not in COMMON_WORDS)


def _contains(text: str, target: str) -> bool:
    """`target` occurs in `text` as whole words (so "stone" is not found in "milestones")."""
    left = r"(?<![a-z0-9])" if target[0].isalnum() else ""
    right = r"(?![a-z0-9])" if target[-1].isalnum() else ""
    return re.search(left + re.escape(target) + right, text) is not None


class LeakCheck:
    """Finds training targets copied into a proposed value; build once per run from the training set."""

    def __init__(self, targets: Iterable[Any]) -> None:
        self.targets = distinctive_targets(targets)

    def leaked(self, candidate: str, current: str = "") -> list[str]:
        """The distinctive targets `candidate` contains and `current` did not already contain."""
        new, old = _normal(candidate), _normal(current)
        return [t for t in self.targets if _contains(new, t) and not _contains(old, t)]

    def reason(self, candidate: str, current: str = "") -> str | None:
        """Why `candidate` is refused ("leaks a training target: ..."), or None when it leaks nothing."""
        found = self.leaked(candidate, current)
        if not found:
            return None
        shown = ", ".join(repr(t) for t in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        return f"{LEAK_REASON}: {shown}"
