"""Word-level diff of two prompt texts, as plain segments the review view renders as text.

The one diff of the package: the review view, the history and the HTML report all use `word_diff`.
"""
from __future__ import annotations

import difflib
import functools
import re

_TOKEN = re.compile(r"\s+|[^\s]+")
# An unchanged stretch this short between two changes is folded into the change: a rewritten
# sentence then reads as one removal and one addition, not "~~Add~~Reply ~~an~~with ...".
_GLUE_WORDS = 1


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text or "")


def _is_glue(tokens: list[str]) -> bool:
    return sum(1 for t in tokens if not t.isspace()) <= _GLUE_WORDS


def _diff(old: str, new: str) -> list[list[str]]:
    a, b = _tokens(old), _tokens(new)
    opcodes = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    # fold short unchanged stretches that sit between two changes into the change
    changed = [tag != "equal" for tag, *_ in opcodes]
    for k, (tag, i1, i2, _j1, _j2) in enumerate(opcodes):
        if tag == "equal" and 0 < k < len(opcodes) - 1 and changed[k - 1] and changed[k + 1] \
                and _is_glue(a[i1:i2]):
            changed[k] = True
    out: list[list[str]] = []

    def add(op: str, text: str) -> None:
        if not text:
            return
        if out and out[-1][0] == op:
            out[-1][1] += text
        else:
            out.append([op, text])

    removed, added = [], []
    for (tag, i1, i2, j1, j2), is_change in zip(opcodes, changed):
        if is_change:
            removed += a[i1:i2]
            added += b[j1:j2]
            continue
        add("-", "".join(removed))
        add("+", "".join(added))
        removed, added = [], []
        add("=", "".join(a[i1:i2]))
    add("-", "".join(removed))
    add("+", "".join(added))
    return out


@functools.lru_cache(maxsize=1024)
def _cached(old: str, new: str) -> tuple:
    return tuple(tuple(seg) for seg in _diff(old, new))


def word_diff(old: str | None, new: str | None) -> list[list[str]]:
    """`[[op, text], ...]` with op in `=` (same), `-` (removed), `+` (added).

    Words and the whitespace between them are separate tokens, so the joined `=`/`-` segments give
    back `old` and the joined `=`/`+` segments give back `new` exactly. A run of changes, with at most
    one unchanged word between two of them, becomes one removal then one addition. Cached: the views
    redraw the same diffs on every push.
    """
    return [list(seg) for seg in _cached(old or "", new or "")]
