"""Isolated workspaces: a run started by a deployment never touches the user's checkout.

A deployment run (from the Prefect UI, a schedule or an event) gets its own git worktree
of a committed revision under ``.runs/``. Its DVC cache and remotes point at the main
checkout's, so the run's data lands in the same cache and remote, and its experiment
(a git ref, shared by all worktrees) shows in ``dvc exp show`` of the main checkout. The
user's ``params.yaml``, ``dvc.lock`` and ``data/`` are never written.
"""

from __future__ import annotations

import copy
import fnmatch
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flows.runtime.processes import dvc_executable, run_streaming, tool_env
from tasks.core.config import Params, ParamsError, known_keys, load_params, parse_params
from tasks.core.io import write_text
from tasks.core.paths import PATHS


class WorkspaceError(RuntimeError):
    """The isolated workspace could not be prepared."""


@dataclass(frozen=True)
class Workspace:
    """One isolated worktree of the project."""

    main: Path
    root: Path
    revision: str
    commit: str


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def _must_git(cwd: Path, *args: str) -> str:
    proc = _git(cwd, *args)
    if proc.returncode != 0:
        raise WorkspaceError(
            f"`git {' '.join(args)}` failed: {(proc.stderr or proc.stdout).strip()}"
        )
    return proc.stdout.strip()


def _dvc(cwd: Path, *args: str, on_line: Callable[[str], None]) -> None:
    code, lines = run_streaming([dvc_executable(), *args], cwd, on_line, env=tool_env())
    if code != 0:
        raise WorkspaceError(f"`dvc {' '.join(args)}` failed: " + " ".join(lines[-3:]))


def _is_local(url: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*://", url) or url.startswith("file://")


def share_dvc_storage(main: Path, worktree: Path, on_line: Callable[[str], None] = print) -> None:
    """Point the worktree's DVC cache and local remotes at the main checkout's.

    Written to the worktree's ``.dvc/config.local`` (never committed). The main checkout's
    own ``config.local`` (credentials, a personal remote) is carried over first.
    """
    from dvc.repo import Repo

    local_cfg = main / ".dvc" / "config.local"
    if local_cfg.exists():
        shutil.copy2(local_cfg, worktree / ".dvc" / "config.local")
    with Repo(str(main)) as repo:
        remotes = {name: dict(cfg) for name, cfg in repo.config["remote"].items()}
        # the cache's root (DVC 3 keeps objects under files/md5 below it, and appends that
        # itself: pointing cache.dir at .../files/md5 nests a second cache inside the first)
        cache_dir = Path(repo.cache.local_cache_dir)
    _dvc(worktree, "config", "--local", "cache.dir", str(cache_dir), on_line=on_line)
    for name, cfg in remotes.items():
        url = str(cfg.get("url", ""))
        if url and _is_local(
            url
        ):  # relative local remotes resolve against .dvc/: make them absolute
            _dvc(worktree, "remote", "modify", "--local", name, "url", url, on_line=on_line)


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """``raw['a']['b'] = value`` for ``key='a.b'``, making the levels in between."""
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ParamsError(f"{key}: '{part}' holds a value, not a section")
        node = child
    node[parts[-1]] = value


def leaf_overrides(overrides: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"n_trials": 5}}`` as ``{"train.n_trials": 5}`` (each key as written)."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if not isinstance(key, str) or not key.strip():
            raise ParamsError(
                f"parameter override key {key!r} must be a dotted name such as 'train.n_trials'"
            )
        dotted = f"{prefix}.{key.strip()}" if prefix else key.strip()
        if isinstance(value, dict) and value:
            out.update(leaf_overrides(value, dotted))
        else:
            out[dotted] = value
    return out


def _number(value: Any) -> float | None:
    """``value`` as a number when it is one, or text that reads as one (None otherwise)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def check_allowed(
    overrides: dict[str, Any], allowed: list[str], limits: dict[str, float] | None = None
) -> None:
    """Refuse any override key that no pattern of ``retrain.allowed_overrides`` matches,
    and, with ``limits`` (``retrain.override_limits``), any number above its key's bound or
    for a key that has none."""
    refused = [k for k in overrides if not any(fnmatch.fnmatchcase(k, p) for p in allowed)]
    if refused:
        raise ParamsError(
            f"parameter override(s) {', '.join(refused)} not allowed: a run may override only "
            f"keys matching retrain.allowed_overrides ({', '.join(allowed) or 'none'}) in the "
            "served checkout's params.yaml"
        )
    if limits is None:
        return
    known = known_keys(Params)
    for key, value in overrides.items():
        number = _number(value)
        parent, _, leaf = key.rpartition(".")
        if number is None or leaf not in known.get(parent, []):
            continue  # dates, names, lists, unknown keys: the typed params name the problem
        bound = next((v for p, v in limits.items() if fnmatch.fnmatchcase(key, p)), None)
        if bound is None:
            raise ParamsError(
                f"parameter override {key}={value!r}: {key} has no bound in "
                "retrain.override_limits of the served checkout's params.yaml, so a run may "
                "not set it to a number"
            )
        if not abs(number) <= bound:  # NaN too
            raise ParamsError(
                f"parameter override {key}={value!r} is above its bound {bound:g} "
                "(retrain.override_limits in the served checkout's params.yaml)"
            )


def apply_overrides(
    params_file: Path,
    overrides: dict[str, Any],
    allowed: list[str] | None = None,
    limits: dict[str, float] | None = None,
) -> list[str]:
    """Apply ``{"train.n_trials": 20, ...}`` to ``params_file`` after validating the result.

    Returns the ``key=value`` lines applied. Raises :class:`ParamsError` naming the key
    when a key is not allowed (``allowed``: the patterns of ``retrain.allowed_overrides``;
    None allows every key, for tests and local tools), a number is past its bound
    (``limits``: ``retrain.override_limits``), a key is unknown, or of the wrong type; the
    file is left as it was.
    """
    if not overrides:
        return []
    if not isinstance(overrides, dict):
        raise ParamsError(
            f"parameter overrides must be a mapping of dotted keys, not {overrides!r}"
        )
    overrides = leaf_overrides(overrides)
    if allowed is not None:
        check_allowed(overrides, allowed, limits)
    raw = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
    merged = copy.deepcopy(raw)
    for key, value in overrides.items():
        set_dotted(merged, key, value)
    parse_params(merged, "params overrides")
    write_text(params_file, yaml.safe_dump(merged, sort_keys=False))
    return [f"{k}={v!r}" for k, v in overrides.items()]


def create(
    main: Path, name: str, revision: str = "HEAD", on_line: Callable[[str], None] = print
) -> Workspace:
    """A new worktree of ``revision`` at ``<main>/.runs/<name>``, sharing DVC storage.

    Raises
    ------
    WorkspaceError
        When ``revision`` is unknown or git cannot make the worktree.
    """
    commit = _git(main, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").stdout.strip()
    if not commit:
        raise WorkspaceError(
            f"revision '{revision}' is not a commit in {main}: deployment runs use committed code "
            "(commit your change, or pass a branch, tag or commit)"
        )
    target = main / PATHS.workspaces_dir / name
    if target.exists():
        raise WorkspaceError(
            f"workspace {target} exists already; remove it or pick another run name"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    _must_git(main, "worktree", "add", "--detach", "--quiet", str(target), commit)
    on_line(f"isolated workspace {target.relative_to(main)} at commit {commit[:12]}")
    ws = Workspace(main=main, root=target, revision=revision, commit=commit)
    try:
        share_dvc_storage(main, target, on_line)
        load_params(target / PATHS.params)
    except Exception:
        remove(ws, on_line)
        raise
    return ws


def keep_reports(ws: Workspace, run_name: str) -> Path | None:
    """Copy the run's ``reports/`` to ``<main>/runs/<run_name>/reports``; return the folder."""
    src = ws.root / PATHS.reports_dir
    if not src.is_dir():
        return None
    dest = ws.main / PATHS.runs_dir / run_name / PATHS.reports_dir
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{dest.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    tmp.replace(dest)
    return dest


def remove(ws: Workspace, on_line: Callable[[str], None] = print) -> None:
    """Delete the worktree and its git bookkeeping."""
    proc = _git(ws.main, "worktree", "remove", "--force", str(ws.root))
    if proc.returncode != 0 and ws.root.exists():
        shutil.rmtree(ws.root, ignore_errors=True)
    _git(ws.main, "worktree", "prune")
    on_line(f"removed isolated workspace {ws.root.name}")
