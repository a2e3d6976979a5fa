"""Step 3, collect: read a batch from the configured source into a new immutable snapshot.

``collect.source`` picks the simulator (default), a CSV or Parquet file under ``data/``, or
a SQL query. Each run adds ``data/01_raw/<snapshot id>/`` with its provenance (source,
window, rows, content hash, schema, time, code version) and points ``current.json`` at
it; a batch whose content is already stored reuses that snapshot. Nothing is overwritten.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pandas as pd

from tasks.core.config import CollectParams, ComputeParams, ProblemParams
from tasks.core.data.pii import PiiError, key_from_env, key_id, protect_frame
from tasks.core.data.snapshots import current_snapshot, set_current, write_snapshot_parts
from tasks.core.data.sources import Collected, Part, collect_from_source, source_key
from tasks.core.declare import Keys
from tasks.core.errors import StepError
from tasks.core.io import read_json, write_json
from tasks.core.paths import PATHS
from tasks.core.step import code_version, run_step

log = logging.getLogger("churn.collect")
STEP = "collect"


def check_field_sizes(data: pd.DataFrame, max_chars: int, first_row: int = 0) -> None:
    """Refuse a batch with a text cell longer than ``max_chars`` (naming the column and row).

    ``first_row``: the position of ``data``'s first row in the whole batch (for a part).
    """
    for column in data.columns:
        values = data[column]
        if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
            continue
        lengths = values.astype("string").str.len()
        if lengths.notna().any() and lengths.max() > max_chars:
            row = int(lengths.to_numpy(dtype=float, na_value=0).argmax())
            raise StepError(
                STEP,
                "field size",
                f"column '{column}', row {first_row + row + 1}: a field of {int(lengths.max())} "
                "characters, above "
                f"collect.max_field_chars={max_chars}. A broken export (an unclosed quote swallows "
                "the "
                "rest of the file) often does this; fix the source, or raise the limit if such "
                "fields "
                "are expected.",
            )


def check_columns(data: pd.DataFrame, id_column: str | None, target: str) -> None:
    """Refuse a batch without the id or the target column."""
    missing = [c for c in (id_column, target) if c is not None and c not in data.columns]
    if missing:
        shown = ", ".join(map(str, data.columns[:12]))
        raise StepError(
            STEP,
            "required columns",
            f"column(s) {missing} not in the data (columns: {shown}...): "
            "set problem.id_column and problem.target to this source's column names",
        )


def provenance_of(collected: Collected, params: CollectParams, version: str) -> dict[str, Any]:
    """The provenance record stored with a snapshot (before rows, hash and schema are added)."""
    return {
        "source": collected.source,
        "window": collected.window,
        "code_version": version,
        "params": params.model_dump(mode="json"),
    }


def checked_parts(
    collected: Collected, cfg: CollectParams, problem: ProblemParams, provenance: dict[str, Any]
) -> Iterator[Part]:
    """The batch's parts, each checked and with its personal data protected.

    Records what was protected in ``provenance["pii"]`` (from the first part: every part
    has the same columns). Raises on the first bad part, and after the last one if the
    batch held no rows, so a bad batch never becomes a snapshot.
    """
    key = key_from_env(cfg.pii_key_env)
    rows = 0
    for k, (data, oracle) in enumerate(collected.read_parts()):
        if k == 0:
            check_columns(data, problem.id_column, problem.target)
        check_field_sizes(data, cfg.max_field_chars, rows)
        try:
            protected, pii = protect_frame(data, cfg.pii, key, cfg.pii_key_env)
        except PiiError as exc:
            raise StepError(STEP, "personal data", str(exc)) from None
        if k == 0:
            provenance["pii"] = pii
            if pii["missing"]:
                log.warning("collect.pii names column(s) not in this batch: %s", pii["missing"])
            if pii["columns"]:
                log.info(
                    "personal data: %s", ", ".join(f"{c} {a}" for c, a in pii["columns"].items())
                )
        rows += len(protected)
        if k and k % 10 == 0:
            log.info("collected %d parts, %d rows so far", k, rows)
        yield protected, oracle
    if rows == 0:
        raise StepError(STEP, "empty batch", "the source returned no rows for this window")


def check_pii_key(cfg: CollectParams) -> bytes | None:
    """The pseudonymisation key, refusing at once (before any row is read) when it is needed
    and not set."""
    try:
        key = key_from_env(cfg.pii_key_env)
    except PiiError as exc:  # the placeholder of .env.example
        raise StepError(STEP, "personal data", str(exc)) from None
    needed = sorted(c for c, action in cfg.pii.items() if action == "pseudonymise")
    if needed and key is None:
        raise StepError(
            STEP,
            "personal data",
            f"collect.pii pseudonymises {needed} but {cfg.pii_key_env} is not set: export "
            f"{cfg.pii_key_env}=<a secret key> (docker compose reads it from .env), never in "
            "params.yaml",
        )
    return key


def unchanged_source(root: Path, raw_dir: Path, key: str | None) -> str | None:
    """The current snapshot's id when the last collection read a source with fingerprint
    ``key`` into it (None when the source must be read: a new fingerprint, or SQL)."""
    if key is None:
        return None
    last = read_json(root / PATHS.collect_source) if (root / PATHS.collect_source).is_file() else {}
    try:
        current = current_snapshot(raw_dir)
    except StepError:
        return None
    if last.get("key") == key and last.get("snapshot_id") == current.snapshot_id:
        return current.snapshot_id
    return None


def main(
    root: Path,
    cfg: CollectParams,
    problem: Annotated[ProblemParams, Keys("id_column", "target")],
    compute: ComputeParams,
) -> None:
    """Collect one batch, part by part, and store it as a snapshot.

    The stage runs on every ``dvc repro`` (``always_changed`` in dvc.yaml), since a database
    can change under the same query: a SQL source is read each time, and a new snapshot is
    stored only when the content differs. A file or the simulator is read again only when
    its fingerprint (:func:`tasks.core.data.sources.source_key`) changed.
    """
    key_bytes = check_pii_key(cfg)
    raw_dir = root / PATHS.raw_dir
    version = code_version(root)
    fingerprint = source_key(
        cfg,
        root,
        {
            "code": version,
            "pii_key": key_id(key_bytes) if key_bytes else None,
            "columns": [problem.id_column, problem.target],
        },
    )
    same = unchanged_source(root, raw_dir, fingerprint)
    if same is not None:
        log.info(
            "source '%s' unchanged since snapshot %s (%s): nothing read",
            cfg.source,
            same,
            "same file size and time" if cfg.source != "simulator" else "same settings",
        )
        return
    log.info("reading from source '%s'", cfg.source)
    collected = collect_from_source(cfg, root, compute.partition_rows)
    provenance = provenance_of(collected, cfg, version)
    snapshot, created = write_snapshot_parts(
        raw_dir, checked_parts(collected, cfg, problem, provenance), provenance
    )
    set_current(raw_dir, snapshot)
    if fingerprint is not None:
        write_json(
            root / PATHS.collect_source, {"key": fingerprint, "snapshot_id": snapshot.snapshot_id}
        )
    verb = "stored new" if created else "reusing identical"
    log.info(
        "%s snapshot %s: %d rows x %d columns in %d parts (sha256 %s...)",
        verb,
        snapshot.snapshot_id,
        snapshot.provenance["rows"],
        snapshot.provenance["columns"],
        snapshot.provenance.get("parts", 1),
        snapshot.provenance["content_sha256"][:12],
    )


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
