"""DataFrames the package returns (`open_run(...).samples`, `workbench.runs()`, ...) show text as text.

In JupyterLab a frame's HTML is typeset by MathJax: a prediction or a gradient holding two dollar
signs ("costs $5 and $7") is drawn as LaTeX. pandas' own switch, `display.html.use_mathjax=False`,
marks the table `tex2jax_ignore` / `mathjax_ignore`, but it is a global option, and the user's
settings are theirs. So the frames are a subclass (pandas' documented way to extend a DataFrame:
`_constructor`, so slices, copies and sorts stay one) that turns the option off only while it draws
itself. Everything else is a pandas DataFrame.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["TextFrame"]


class TextFrame(pd.DataFrame):
    """A pandas DataFrame whose notebook (HTML) display is never typeset as LaTeX."""

    @property
    def _constructor(self) -> Any:
        return TextFrame

    def _repr_html_(self) -> str | None:
        with pd.option_context("display.html.use_mathjax", False):
            return super()._repr_html_()
