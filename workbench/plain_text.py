"""Text from data, a model or a person, shown as what it is (the report, the charts, the graph labels).

A value may hold markup (`<b>`, `<a href>`), which is escaped, and characters a reader cannot see
that change what they read: a right-to-left override turns the sample id "s6\\u202egnp.exe" into
"s6exe.png" on screen and reorders the text around it. So in HTML every value is isolated (`<bdi>`),
and where an id or a name is shown its invisible controls are spelled out as markers (`⟨U+202E⟩`).
widgets/util.js (`bidi`, `named`, `showControls`) does the same in the dashboard.
"""
from __future__ import annotations

import html
import re
from typing import Any

# bidi embeddings and overrides (U+202A-202E), isolates (U+2066-2069), the Arabic letter mark (U+061C),
# zero-width characters and direction marks (U+200B-200F), the word joiner (U+2060), the byte-order mark
INVISIBLE_CONTROLS = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")

# the marker's style in the report (the dashboard's is .wb-ctl in widgets/workbench.css)
CONTROL_CSS = (".ctl { font: 600 11px ui-monospace, Menlo, Consolas, monospace; color: #b91c1c; background: #fef2f2; "
               "border: 1px dashed #b91c1c; border-radius: 3px; padding: 0 2px; margin: 0 1px; direction: ltr; "
               "unicode-bidi: isolate; } bdi { unicode-bidi: isolate; }")


def control_marker(char: str) -> str:
    """`⟨U+202E⟩` for an invisible control character."""
    return f"\u27e8U+{ord(char):04X}\u27e9"


def show_controls(text: Any) -> str:
    """The text with each invisible control spelled out as a marker (for places that take a plain string)."""
    return INVISIBLE_CONTROLS.sub(lambda m: control_marker(m.group()), "" if text is None else str(text))


def html_text(text: str) -> str:
    """Escaped text (already redacted by the caller), isolated: `<bdi>...</bdi>`."""
    return f"<bdi>{html.escape(text, quote=True)}</bdi>"


def html_shown(text: str) -> str:
    """Escaped text with each invisible control as a marker span (not isolated: for a diff's pieces)."""
    parts, last = [], 0
    for m in INVISIBLE_CONTROLS.finditer(text):
        parts.append(html.escape(text[last:m.start()], quote=True))
        parts.append(f"<span class=\"ctl\" title=\"an invisible control character\">{control_marker(m.group())}</span>")
        last = m.end()
    parts.append(html.escape(text[last:], quote=True))
    return "".join(parts)


def html_name(text: str) -> str:
    """An id, a name or a line that names them: escaped, isolated, invisible controls as marker spans."""
    return f"<bdi class=\"name\">{html_shown(text)}</bdi>"
