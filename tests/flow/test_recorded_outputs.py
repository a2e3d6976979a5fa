"""A run on the test profile writes the outputs it wrote before, byte for byte.

A restructuring (the objective seam, steps split by concern) must not change what a run
produces. The checksums in ``recorded_outputs.json`` are those of the shared trained
project's deterministic outputs (splits, model, selection, metrics; not the files that
carry a time stamp, a snapshot id or a code version). When a change is meant to alter
them, the failure prints the new table to paste into that file, and the commit says why.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RECORDED = Path(__file__).with_name("recorded_outputs.json")


def test_the_test_profile_run_writes_the_recorded_outputs(trained_project):
    recorded = json.loads(RECORDED.read_text())
    found = {
        rel: hashlib.md5((trained_project / rel).read_bytes()).hexdigest()
        for rel in sorted(recorded)
        if (trained_project / rel).exists()
    }
    changed = sorted(rel for rel in recorded if found.get(rel) != recorded[rel])
    assert not changed, (
        f"outputs differ from the recorded run: {changed}. If the change is intended, "
        f"replace {RECORDED.name} with:\n{json.dumps(found, indent=1, sort_keys=True)}"
    )
