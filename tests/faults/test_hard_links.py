"""A hard link under data/ does not escape the source confinement (issue 40, case 10).

Before: ``collect.path`` was checked with ``resolve()``, which follows symbolic links but
cannot see a hard link: ``ln /etc/secret data/external/x.csv`` collected the secret file.
"""

from __future__ import annotations

import os

import pytest

from devtools.project import SMALL, deep_merge
from tasks.core.config import parse_params
from tasks.core.data.sources import safe_source_path
from tasks.core.errors import StepError
from tests.conftest import default_params_dict


def collect_params(**collect):
    return parse_params(
        deep_merge(deep_merge(default_params_dict(), SMALL), {"collect": collect})
    ).collect


def test_a_hard_link_to_a_file_outside_data_is_refused(tmp_path):
    outside = tmp_path / "outside" / "secret.csv"
    outside.parent.mkdir()
    outside.write_text("customer_id,churned_30d\nroot,yes\n")
    inside = tmp_path / "data" / "external" / "export.csv"
    inside.parent.mkdir(parents=True)
    os.link(outside, inside)
    cfg = collect_params(source="csv", path="data/external/export.csv", window=None)
    with pytest.raises(StepError, match="is a hard link .* Copy the file under data/"):
        safe_source_path(cfg.path, tmp_path, cfg)
    # a plain copy is fine; the operator may trust a location on purpose
    inside.unlink()
    inside.write_bytes(outside.read_bytes())
    assert safe_source_path(cfg.path, tmp_path, cfg) == inside.resolve()
    os.unlink(inside)
    os.link(outside, inside)
    trusted = collect_params(
        source="csv", path="data/external/export.csv", window=None, allow_outside_data_dir=True
    )
    assert safe_source_path(trusted.path, tmp_path, trusted) == inside.resolve()
