"""Markup in column names and values never becomes markup in a page (issue 40, case 3).

Before: a CSV column named ``</script><script>alert(5)</script>`` (or
``"><img src=x onerror=alert(1)>``) was written raw into the Great Expectations Data Docs
pages and inside the inline ``<script>`` of the Evidently monitoring report, and ran in a
browser. Each page is parsed here as a browser would split it: no script holds the planted
code, and no element carries a planted attribute.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.quality.data_docs import DocsTarget
from tasks.core.quality.pages import evidently_html
from tasks.core.quality.validation import validate_frame

SCRIPT = "</script><script>alert(5)</script>"
IMAGE = '"><img src=x onerror=alert(1)>'


class Parsed(HTMLParser):
    """The script texts and the attribute names of a page, as a browser's parser splits it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.attributes: set[str] = set()
        self.tags: set[str] = set()
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def assert_inert(page: str) -> None:
    parsed = Parsed()
    parsed.feed(page)
    assert not any(script.strip().startswith("alert(") for script in parsed.scripts)
    assert not any("alert(5)" in s and "var " not in s for s in parsed.scripts), "a new script"
    assert "onerror" not in parsed.attributes, "a planted attribute"


def hostile_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            SCRIPT: rng.normal(size=n),
            IMAGE: rng.choice(["a", "b", SCRIPT], n),
            "plain": rng.normal(size=n),
        }
    )


def test_the_evidently_report_embeds_hostile_names_and_values_inertly():
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference, current = hostile_frame(seed=0), hostile_frame(seed=1)
    current[SCRIPT] += 3  # drifted: the column is named in the findings too
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    raw = snapshot.get_html_str(as_iframe=False)
    assert SCRIPT in raw, "Evidently itself writes the name raw into its script block"
    page = evidently_html(snapshot)
    assert SCRIPT not in page and IMAGE not in page
    assert_inert(page)
    assert "\\u003c/script\\u003e" in page  # the same text, to the page's JavaScript


def test_data_docs_pages_show_hostile_names_and_values_as_text(tmp_path: Path):
    suite = {
        "name": "hostile",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": SCRIPT}},
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": IMAGE, "value_set": ["a", "b"]},  # SCRIPT is unexpected
            },
        ],
    }
    docs = tmp_path / "docs"
    validate_frame(hostile_frame(), suite, "raw", DocsTarget(docs, "raw", "snapshot S1"))
    pages = list(docs.rglob("*.html"))
    assert pages
    for path in pages:
        page = path.read_text(encoding="utf-8")
        assert SCRIPT not in page and IMAGE not in page, path
        assert_inert(page)
    assert any("&lt;/script&gt;" in p.read_text(encoding="utf-8") for p in pages)


def test_markdown_reports_show_hostile_names_as_text():
    from tasks.core.quality.pages import md

    for name in (SCRIPT, IMAGE, "a|b", "`code`"):
        text = md(name)
        assert "<" not in text and ">" not in text
        assert "|" not in text.replace("\\|", "") and "`" not in text.replace("\\`", "")
    assert md(SCRIPT) == "&lt;/script&gt;&lt;script&gt;alert(5)&lt;/script&gt;"
