"""A corrupted or malicious source file: a clear failure at the first step that reads it.

Nothing is overwritten.

Each case runs the collect step (the step that reads the source) on a project that already
holds a good snapshot. What must hold: the step fails naming the problem; the current
snapshot and every stored snapshot keep their bytes; no half-written file is left.
Cells of the wrong type stay text at collect (a CSV is read as exported); the clean step's
suite names them: tests/data/test_bad_input.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.core.io import file_sha256
from tasks.core.step import run_step

GOOD = "customer_id,snapshot_date,tenure_months,contract,churned_30d\n" + "".join(
    f"c{i},2024-01-{1 + i % 28:02d},{i % 60},{'monthly' if i % 2 else 'yearly'},"
    f"{'yes' if i % 5 == 0 else 'no'}\n"
    for i in range(200)
)


def write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        os.chmod(path, 0o644)
    path.write_bytes(content)


def hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): file_sha256(p)
        for p in sorted((root / "data" / "01_raw").rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def collected(project):
    root = project(
        {
            "collect": {"source": "csv", "path": "data/external/in.csv", "window": None},
            "problem": {"time_column": "snapshot_date"},
        }
    )
    write(root / "data" / "external" / "in.csv", GOOD.encode())
    assert collect(root) == 0
    return root


def collect(root: Path) -> int:
    from tasks import collect as step

    before = Path.cwd()
    os.chdir(root)
    try:
        return run_step("collect", step.main)
    finally:
        os.chdir(before)


CASES = {
    "truncated": (GOOD.encode()[: len(GOOD) - 9], "cut short"),
    "a huge field": (
        (GOOD + f"c999,2024-01-05,3,{'x' * 200_000},no\n").encode(),
        "max_field_chars",
    ),
    "wrong encoding": (GOOD.replace("monthly", "mensuel-à-payer").encode("latin-1"), "encoding"),
    "an unclosed quote": (
        GOOD.replace("c7,", '"c7,', 1).encode(),
        "could not be read|max_field_chars|cut short",
    ),
    "binary garbage": (bytes(range(256)) * 16, "encoding|could not be read|NUL byte"),
    "empty": (b"", "no data|empty|could not be read"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_source_fails_at_collect_and_overwrites_nothing(collected, case, capsys):
    content, message = CASES[case]
    before = hashes(collected)
    current = (collected / "data" / "01_raw" / "current.json").read_text()
    write(collected / "data" / "external" / "in.csv", content)
    code = collect(collected)
    err = capsys.readouterr().err
    assert code != 0, f"{case}: collect accepted it"
    assert any(m in err for m in message.split("|")), err[-2000:]
    assert "FAILED step 'collect'" in err and "Traceback" not in err, err[-2000:]
    assert hashes(collected) == before, "stored snapshots unchanged"
    assert (collected / "data" / "01_raw" / "current.json").read_text() == current
    assert not list((collected / "data").rglob(".tmp-*"))
