"""Pages people open in a browser, written so that data never becomes markup.

Column names and values come from the user's data, and a CSV column may be named
``</script><script>alert(5)</script>``. Two libraries write our HTML pages and neither
escapes such text: Great Expectations' Data Docs put column names and observed values into
the page as they are, and Evidently's reports embed their data as JSON inside a
``<script>`` block, where a ``</script>`` in a string ends the block. Each page is made safe
here, where it is written:

- :func:`evidently_html`: the report with its JSON written so that ``<``, ``>`` and ``&``
  are ``\\u003c``, ``\\u003e`` and ``\\u0026`` (the same string to JavaScript, inert to the
  HTML parser: Django's ``json_script`` does the same);
- :func:`escape_strings`: a Data Docs page with every raw occurrence of the given strings
  (the data's column names and the values the validation reports) HTML-escaped;
- :func:`md`: text from the data as it goes into a Markdown report (model card, leakage
  audit, features), so that a renderer shows it as text, not as markup or a table cell.
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Iterable, Iterator
from typing import Any

SPECIAL = set('<>&"')


class _ScriptSafeJson:
    """The ``json`` module, but ``dumps`` gives text that cannot end a ``<script>`` block."""

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)

    @staticmethod
    def dumps(*args: Any, **kwargs: Any) -> str:
        text = json.dumps(*args, **kwargs)
        # outside strings JSON has none of these characters: only strings change
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@contextlib.contextmanager
def _script_safe_evidently() -> Iterator[None]:
    from evidently.legacy.utils import dashboard

    original = dashboard.json
    dashboard.json = _ScriptSafeJson()  # the module that writes the report's data block
    try:
        yield
    finally:
        dashboard.json = original


def evidently_html(snapshot: Any) -> str:
    """An Evidently snapshot's standalone HTML page, its embedded data inert to the parser."""
    with _script_safe_evidently():
        return snapshot.get_html_str(as_iframe=False)


def unsafe_strings(values: Iterable[Any]) -> set[str]:
    """The texts among ``values`` (walked recursively through dicts and lists) that hold a
    character with a meaning in HTML."""
    found: set[str] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if SPECIAL & set(value):
                found.add(value)
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, (list, tuple, set)):
            stack.extend(value)
    return found


def escape_strings(page: str, strings: Iterable[str]) -> str:
    """``page`` with each raw occurrence of ``strings`` HTML-escaped (longest first, so a
    string inside another is not escaped twice)."""
    for text in sorted(set(strings), key=len, reverse=True):
        if text and text in page:
            page = page.replace(text, html.escape(text, quote=True))
    return page


def md(text: object) -> str:
    """``text`` for a Markdown report: HTML characters as entities, and ``|`` and backticks
    escaped (a column name stays one table cell, and never opens a code span or a tag)."""
    out = html.escape(str(text), quote=False)
    return out.replace("|", "\\|").replace("`", "\\`")
