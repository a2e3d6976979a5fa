"""The DAG as ``dvc.yaml`` defines it: stages, their order and their retry policy.

This is the only reader of ``dvc.yaml``'s structure; the Prefect training flow is built
from what it returns, so the flow cannot drift from the pipeline ``dvc repro`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

OUTPUT_KINDS = ("outs", "metrics", "plots")


@dataclass(frozen=True)
class Stage:
    """One DVC stage, as the flow needs it."""

    name: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    params: tuple[str, ...]
    retries: int = 0
    description: str = ""
    upstream: tuple[str, ...] = field(default=())


def _paths(entries: list[Any] | None) -> list[str]:
    out = []
    for entry in entries or []:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, dict):
            out.extend(str(k) for k in entry)
    return out


def _params(entries: list[Any] | None) -> list[str]:
    out = []
    for entry in entries or []:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, dict):  # {params_file.yaml: [keys]}
            for file, keys in entry.items():
                out.extend(f"{file}:{k}" for k in keys or [])
    return out


def _overlaps(a: str, b: str) -> bool:
    pa, pb = PurePosixPath(a), PurePosixPath(b)
    return pa == pb or pa.is_relative_to(pb) or pb.is_relative_to(pa)


def _read_stage(name: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or "cmd" not in body:
        raise ValueError(f"dvc.yaml stage '{name}': only plain stages with a 'cmd' are supported")
    if "foreach" in body or "matrix" in body:
        raise ValueError(f"dvc.yaml stage '{name}': foreach/matrix stages are not supported")
    meta = body.get("meta") or {}
    cmd = body["cmd"] if isinstance(body["cmd"], str) else " && ".join(body["cmd"])
    return {
        "cmd": cmd,
        "deps": tuple(_paths(body.get("deps"))),
        "outs": tuple(p for kind in OUTPUT_KINDS for p in _paths(body.get(kind))),
        "params": tuple(_params(body.get("params"))),
        "retries": int(meta.get("retries", 0)),
        "description": str(meta.get("description", "")),
    }


def parse_stages(spec: dict[str, Any]) -> list[Stage]:
    """Stages of a parsed ``dvc.yaml`` in a valid run order (file order among equals).

    Parameters
    ----------
    spec : dict
        The parsed YAML.

    Returns
    -------
    list of Stage
        Each with ``upstream`` set to the stages whose outputs it depends on.

    Raises
    ------
    ValueError
        On a cycle or a stage form this runner does not handle (``foreach``, ``matrix``).
    """
    stages = {name: _read_stage(name, body) for name, body in (spec.get("stages") or {}).items()}
    upstream = {
        name: tuple(
            other
            for other, ob in stages.items()
            if other != name and any(_overlaps(d, o) for d in body["deps"] for o in ob["outs"])
        )
        for name, body in stages.items()
    }
    order: list[str] = []
    pending = list(stages)
    while pending:
        ready = [n for n in pending if all(u in order for u in upstream[n])]
        if not ready:
            raise ValueError(f"dvc.yaml has a dependency cycle among stages {pending}")
        order.append(ready[0])
        pending.remove(ready[0])
    return [Stage(name=n, upstream=upstream[n], **stages[n]) for n in order]


def load_stages(dvc_yaml: Path) -> list[Stage]:
    """Read ``dvc.yaml`` and return its stages in run order (see :func:`parse_stages`)."""
    return parse_stages(yaml.safe_load(Path(dvc_yaml).read_text(encoding="utf-8")) or {})


def missing_params(root: Path, stages: list[Stage]) -> list[str]:
    """The keys ``dvc.yaml`` lists that ``params.yaml`` does not hold, each with its stages.

    The typed config fills a missing key with its default, but DVC reads the file as it is
    and refuses to run a stage whose key is absent; saying so before any stage runs names
    the key and the fix (a new key such as ``problem.type``, or ``positive_label: null`` for
    a regression problem).
    """
    raw = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) or {}
    where: dict[str, list[str]] = {}
    for stage in stages:
        for listed in stage.params:
            key = listed.split(":")[-1]
            node: Any = raw
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    where.setdefault(key, []).append(stage.name)
                    break
                node = node[part]
    return [f"{key} (read by {', '.join(names)})" for key, names in where.items()]
