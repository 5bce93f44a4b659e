"""Word-level diff of two prompt texts, as plain segments the review view renders as text."""
from __future__ import annotations

import difflib
import re

_TOKEN = re.compile(r"\s+|[^\s]+")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text or "")


def word_diff(old: str, new: str) -> list[list[str]]:
    """`[[op, text], ...]` with op in `=` (same), `-` (removed), `+` (added).

    Words and the whitespace between them are separate tokens, so the joined `=`/`-` segments give
    back `old` and the joined `=`/`+` segments give back `new` exactly. Neighbouring segments with
    the same op are merged, so a rewritten sentence reads as one removal and one addition.
    """
    a, b = _tokens(old), _tokens(new)
    out: list[list[str]] = []

    def add(op: str, text: str) -> None:
        if not text:
            return
        if out and out[-1][0] == op:
            out[-1][1] += text
        else:
            out.append([op, text])

    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("=", "".join(a[i1:i2]))
        else:
            add("-", "".join(a[i1:i2]))
            add("+", "".join(b[j1:j2]))
    return out
