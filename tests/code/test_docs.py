"""The manual: a one-page README, a docs site that builds with --strict, and a params
reference that cannot drift from the typed config."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from devtools.params_reference import PAGE, render, rows
from tasks.core.config import Params
from tests.conftest import REPO

MKDOCS = Path(sys.executable).with_name("mkdocs")


def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "-f", str(root / "mkdocs.yml"), "-d", str(site)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )


def test_the_site_builds_with_strict_and_has_a_page_per_topic(tmp_path):
    done = build(REPO, tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    for page in (
        "getting-started",
        "steps",
        "own-data",
        "serving",
        "prefect",
        "monitoring",
        "reproduction",
        "scale-out",
        "performance",
        "guarantees",
        "architecture",
        "reference/params",
    ):
        assert (tmp_path / "site" / page / "index.html").exists(), page
    assert (tmp_path / "site" / "search" / "search_index.json").exists()


def test_a_broken_link_or_a_page_left_out_of_the_navigation_fails_the_build(tmp_path):
    for change in ("broken link", "page not in nav"):
        root = tmp_path / change.replace(" ", "-")
        shutil.copytree(REPO / "docs", root / "docs")
        shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
        if change == "broken link":
            page = root / "docs" / "serving.md"
            page.write_text(page.read_text() + "\nSee [the missing page](nowhere.md).\n")
        else:
            (root / "docs" / "orphan.md").write_text("# Not in the navigation\n")
        done = build(root, root / "site")
        assert done.returncode != 0, change
        assert "nowhere.md" in done.stderr or "orphan.md" in done.stderr, done.stderr


def yaml_keys(node, prefix=""):
    if not isinstance(node, dict):
        return [prefix]
    out = [prefix] if prefix else []
    for key, value in node.items():
        out += yaml_keys(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def test_every_key_of_params_yaml_is_in_the_generated_reference():
    page = PAGE.read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", page, flags=re.M))
    free_form = {  # keys whose values are maps the user writes (their own keys are data)
        key
        for section, field in Params.model_fields.items()
        for key, sub, _ in rows(field.annotation, f"{section}.")
        if str(sub.annotation).startswith("dict[")
    }
    missing = []
    for key in yaml_keys(yaml.safe_load((REPO / "params.yaml").read_text())):
        if "." not in key or key in documented:
            continue
        if not any(key.startswith(f"{d}.") for d in free_form):
            missing.append(key)
    assert missing == [], f"keys of params.yaml missing from {PAGE.name}: {missing}"
    assert len(documented) > 100


def test_the_committed_reference_is_what_the_typed_config_generates():
    assert PAGE.read_text() == render(), (
        f"{PAGE.relative_to(REPO)} is out of date with tasks/core/config.py or params.yaml: "
        "run make docs and commit it"
    )


def test_the_reference_names_type_bounds_default_and_description():
    page = PAGE.read_text()
    row = next(line for line in page.splitlines() if line.startswith("| `monitor.drift_threshold`"))
    assert "float (> 0)" in row and "`0.1`" in row, row
    row = next(line for line in page.splitlines() if line.startswith("| `split.strategy`"))
    assert "one of: auto, stratified, time, group" in row, row


def test_the_readme_is_one_page_whose_links_all_resolve():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for needed in ("make run", "make test", "make serve", "make server", "make init", "dvc repro"):
        assert needed in text, needed
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert len(links) >= 10
    for link in links:
        if not link.startswith("http"):
            assert (REPO / link).exists(), link
