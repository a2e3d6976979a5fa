"""Runs as DVC experiments: naming, saving, pushing, and reproducing one exactly."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from flows.runtime.processes import dvc_executable, run_streaming
from tasks.core.paths import PATHS

# Outputs that record when they were made (Data Docs pages name the validation time), so a
# reproduction recomputes them but they never match byte for byte: left out of the check.


EXP_NAME_MAX = 60


NOT_BYTE_FOR_BYTE = (PATHS.data_docs_dir + "/",)


def experiment_name(run_name: str, run_id: str) -> str:
    """``<flow-run-name>-<short id>``, reduced to characters valid in a git ref."""
    base = re.sub(r"[^a-z0-9]+", "-", run_name.lower()).strip("-") or "run"
    short = re.sub(r"[^a-z0-9]", "", run_id.lower())[:8] or "0"
    return f"{base[: EXP_NAME_MAX - len(short) - 1]}-{short}"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def check_git_ready(root: Path) -> None:
    """Experiments are git commits: need a repository with a commit and an identity."""
    if _git(root, "rev-parse", "--verify", "HEAD").returncode != 0:
        raise RuntimeError(f"{root} is not a git repository with a commit; experiments need one")
    for key in ("user.name", "user.email"):
        if not _git(root, "config", key).stdout.strip():
            raise RuntimeError(
                f"git {key} is not set, and DVC experiments are git commits: run "
                f'`git config {key} "..."` (make setup sets a local one)'
            )


def save_experiment(root: Path, name: str, on_line: Callable[[str], None] = print) -> str:
    """Record the workspace as DVC experiment ``name`` (``dvc exp save``); return the name."""
    check_git_ready(root)
    if _git(root, "check-ref-format", f"refs/exps/x/{name}").returncode != 0:
        raise ValueError(f"'{name}' is not a valid experiment name (git ref)")
    args = [dvc_executable(), "exp", "save", "-n", name]
    if _git(root, "ls-files", "--error-unmatch", "dvc.lock").returncode != 0:
        args += ["-I", "dvc.lock"]
    code, lines = run_streaming(args, root, on_line)
    if code != 0:
        raise RuntimeError(f"dvc exp save failed (exit {code}): " + " ".join(lines[-3:]))
    return name


def push_data(root: Path, on_line: Callable[[str], None] = print) -> None:
    """Send the workspace's DVC-tracked data to the default remote (``dvc push``)."""
    code, lines = run_streaming([dvc_executable(), "push"], root, on_line)
    if code != 0:
        raise RuntimeError(f"dvc push failed (exit {code}): " + " ".join(lines[-3:]))


def locked_output_hashes(dvc_lock: Path) -> dict[str, str]:
    """``{path: md5}`` of every stage output recorded in ``dvc.lock``."""
    import yaml

    spec = yaml.safe_load(dvc_lock.read_text(encoding="utf-8")) or {}
    hashes = {}
    for body in (spec.get("stages") or {}).values():
        for out in body.get("outs") or []:
            hashes[out["path"]] = out.get("md5") or out.get("hash", "")
    return hashes


def _must(args: list[str], root: Path, on_line: Callable[[str], None]) -> None:
    code, lines = run_streaming(args, root, on_line)
    if code != 0:
        raise RuntimeError(f"`{' '.join(args[1:])}` failed (exit {code}): " + " ".join(lines[-3:]))


def reproduce_run(
    root: Path,
    name: str,
    source_stages: tuple[str, ...],
    stages: list[str],
    on_line: Callable[[str], None] = print,
    git_remote: str | None = "origin",
) -> dict[str, tuple[str, str]]:
    """Restore experiment ``name`` and recompute every stage from its recorded snapshot.

    Fetches the experiment if it is not here (``dvc exp pull``), applies it, pulls its
    data, then forces every stage except the collection stages (``source_stages``) to
    run again: the snapshot is reused, never collected again.

    Returns
    -------
    dict
        ``{path: (recorded md5, recomputed md5)}`` for every output that differs (empty
        when the run reproduced exactly).
    """
    dvc = dvc_executable()
    local = _git(root, "rev-parse", "--verify", "--quiet", f"refs/exps/*/{name}").returncode == 0
    listed = _git(root, "for-each-ref", "--format=%(refname)", "refs/exps").stdout
    if not local and f"/{name}\n" not in listed + "\n" and git_remote:
        _must([dvc, "exp", "pull", git_remote, name], root, on_line)
    _must([dvc, "exp", "apply", name], root, on_line)
    _must([dvc, "pull"], root, on_line)
    recorded = locked_output_hashes(root / "dvc.lock")
    for stage in stages:
        if stage in source_stages:
            on_line(f"keeping the recorded snapshot of stage '{stage}' (not collecting again)")
            continue
        _must([dvc, "repro", "--force", "--single-item", stage], root, on_line)
    recomputed = locked_output_hashes(root / "dvc.lock")
    return {
        p: (h, recomputed.get(p, ""))
        for p, h in recorded.items()
        if recomputed.get(p) != h and not p.startswith(NOT_BYTE_FOR_BYTE)
    }
