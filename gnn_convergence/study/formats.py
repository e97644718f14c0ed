"""How the study's records and pages write numbers: one function per format.

A grid value is written by :func:`~gnn_convergence.study.space.value_text` (it is also the
text of a Hydra override, read back by the space's grammar); a missing value is ``-`` unless
a caller names another default. The trainer's log lines keep their own format.
"""

from __future__ import annotations

import html
import re
from typing import Any

import numpy as np
import pandas as pd

from gnn_convergence.study.space import value_text
from gnn_convergence.study.vocabulary import finite

MISSING = "-"
MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def missing(value: Any) -> bool:
    """None or a scalar NaN; a list value (a choice of lists) is never missing."""
    return value is None or (np.ndim(value) == 0 and bool(pd.isna(value)))


def number_text(value: Any) -> str:
    """A metric in analysis.md: 4 decimals below 1 (``0.9552``), else 5 significant digits
    (``1525.5``); ``nan`` if none."""
    x = finite(value)
    if x is None:
        return "nan"
    return f"{x:.4f}" if 1e-3 <= abs(x) < 1 else f"{x:.5g}"


def short_text(value: Any, default: str = MISSING) -> str:
    """4 significant digits (hover texts, the atlas's and the datasets' tables); ``default``
    when missing."""
    return default if missing(value) else f"{float(value):.4g}"


def grid_text(value: Any, default: str = MISSING) -> str:
    """A table cell as :func:`value_text` writes it (a numpy float as a float); ``default``
    when missing."""
    if missing(value):
        return default
    return value_text(float(value) if isinstance(value, np.floating) else value)


def markdown_cell(value: Any) -> str:
    """A cell of analysis.md's tables: a float with 2 decimals, anything else as str."""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def html_float(value: float) -> str:
    """A float cell of report.html's tables: 4 decimals."""
    return f"{value:.4f}"


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown on one line: HTML specials as entities, Markdown punctuation
    backslash-escaped."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(" ".join(text.split()), quote=False))


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table, cells as :func:`~gnn_convergence.study.formats.markdown_cell` writes them."""
    cells = [[markdown_cell(v) for v in row] for row in table.values]
    lines = ["| " + " | ".join(map(str, table.columns)) + " |"]
    lines.append("|" + "---|" * len(table.columns))
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)
