"""The batch scoring flow: score a file with the champion, log it like the API does.

``make score IN=data/external/new.csv`` or ``python -m flows.batch_scoring <file>``. The
file (CSV or Parquet, under ``data/`` like any source) is read as the source delivers it,
one chunk at a time (so a file of any size fits), scored through the same cleaning and
feature code as training, and written, chunk by chunk, to
``data/06_predictions/<file>.<model version>.parquet`` with the model version on every row.
The predictions reach the prediction log only once that output is complete, under request
ids made from the file's content and the model version: a failed run logs nothing, and a
rerun logs nothing twice.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import project_root
from scoring.fields import RecordError
from scoring.scoring import LoadedModel
from scoring.store import PredictionStore, open_store
from tasks.core.config import load_params
from tasks.core.data.sources import csv_parts, parquet_parts, safe_source_path
from tasks.core.env import telemetry_off
from tasks.core.io import TMP_PREFIX, file_sha256, write_parts
from tasks.core.paths import PATHS
from tasks.core.serving.registry import open_registry, registry_dir

OUTPUT_DIR = PATHS.predictions_dir


@task(name="score-chunk", cache_policy=NO_CACHE)
def score_chunk(
    model: LoadedModel, chunk: pd.DataFrame, request_id: str, spool: Path
) -> pd.DataFrame:
    """Score one chunk; its log rows go to ``spool`` (logged once the output is complete)."""
    records = chunk.astype(object).where(chunk.notna(), None).to_dict(orient="records")
    try:
        proba, X = model.score(records)
    except RecordError as exc:  # name the row of the file, not of the chunk
        raise RecordError(int(chunk.index[exc.index]), exc.field, exc.reason) from None
    decisions = model.objective.logged_decisions(proba, model.threshold)
    ids = model.record_ids(records)
    inputs = X.astype(object).where(X.notna(), None)
    logged = model.objective.logged_scores(proba)
    inputs.assign(**{_ID: model.logged_ids(ids), _P: logged, _D: decisions}).to_parquet(
        spool / f"{request_id}.parquet"
    )
    return pd.DataFrame(
        {
            model.problem.id_column or "row": ids if model.problem.id_column else chunk.index,
            **model.objective.output_columns(proba, model.threshold),
            "model_version": model.version.version,
            "request_id": request_id,
        }
    )


_ID, _P, _D = "__record_id", "__probability", "__decision"


def log_spooled(store: PredictionStore, spool: Path, version: str) -> tuple[int, int]:
    """Log each spooled chunk the store does not hold yet: (chunks logged, chunks skipped).

    A chunk's request id comes from the file's content and the model version, so a rerun on
    the same file logs nothing twice."""
    logged = skipped = 0
    for path in sorted(spool.glob("*.parquet")):
        request_id = path.stem
        if store.get(request_id):
            skipped += 1
            continue
        frame = pd.read_parquet(path)
        inputs = frame.drop(columns=[_ID, _P, _D])
        store.log(
            request_id,
            version,
            frame[_ID].tolist(),
            inputs.astype(object).where(inputs.notna(), None).to_dict(orient="records"),
            frame[_P].tolist(),
            frame[_D].astype(int).tolist(),
        )
        logged += 1
    store.flush()
    return logged, skipped


@flow(name="batch_scoring")
def batch_scoring(
    input_path: str,
    project_dir: str | None = None,
    chunk_rows: int = 10000,
    output_dir: str = OUTPUT_DIR,
) -> dict[str, Any]:
    """Score ``input_path`` with the champion and write the predictions.

    ``output_dir`` is relative to the project (the deployment writes to ``runs/predictions``
    so that runs started from the UI leave ``data/`` alone).

    Returns
    -------
    dict
        ``output``, ``rows``, ``model_version``, ``batch_id``.
    """
    logger = get_run_logger()
    root = project_root(project_dir)
    out_dir = (root / output_dir).resolve()
    if not out_dir.is_relative_to(root):
        raise ValueError(
            f"output_dir '{output_dir}' leaves the project folder; give a folder inside it"
        )
    params = load_params(root / "params.yaml")
    registry = open_registry(root, params)
    champion = registry.champion()
    if champion is None:
        raise RuntimeError("no champion model yet: run `make run` to train and promote one")
    model = LoadedModel.load(registry, champion)
    path = safe_source_path(input_path, root, params.collect)
    chunks = (
        parquet_parts(path, chunk_rows)
        if path.suffix == ".parquet"
        else csv_parts(path, params.collect, chunk_rows)
    )
    target = out_dir / f"{path.stem}.{champion.version}.parquet"
    # the same file and model give the same request ids: a rerun logs nothing twice
    key = f"{file_sha256(path)}:{champion.version}:{chunk_rows}"
    batch_id = "batch-" + hashlib.sha256(key.encode()).hexdigest()[:12]
    rows = positive = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX + "log.", dir=out_dir) as spooled:
        spool = Path(spooled)
        # one chunk in memory at a time; the output appears whole or not at all, and the
        # predictions are logged only once it has (a refused row logs nothing)
        with write_parts(target) as out:
            for n, (chunk, _) in enumerate(chunks):
                if chunk.empty:
                    continue
                chunk.index = pd.RangeIndex(rows, rows + len(chunk))  # rows of the file
                scored = score_chunk(model, chunk, f"{batch_id}-{n:05d}", spool)
                out.write(scored)
                rows += len(scored)
                positive += int(scored["decision"].sum()) if "decision" in scored else 0
                logger.info("scored %d rows", rows)
            if not rows:
                raise ValueError(f"{input_path} holds no rows (a header only?): nothing to score")
            out.close()
        store = open_store(registry_dir(root, params))
        try:
            logged, skipped = log_spooled(store, spool, champion.version)
        finally:
            store.close()
    if skipped:
        logger.info("%d chunks were logged by an earlier run of this file and model", skipped)
    logger.info("scored %d rows of %s with %s -> %s", rows, input_path, champion.version, target)
    create_markdown_artifact(
        key="batch-scoring",
        markdown=(
            f"# Batch scoring\n\n- input: `{input_path}` ({rows} rows)\n- model: "
            f"`{champion.version}`\n"
            f"- output: `{target.relative_to(root)}`\n- positive decisions: {positive}\n"
        ),
    )
    return {
        "output": str(target),
        "rows": rows,
        "model_version": champion.version,
        "batch_id": batch_id,
    }


def main(argv: list[str]) -> int:
    """Command line: ``python -m flows.batch_scoring <file under data/>``."""
    if len(argv) != 1:
        print("usage: python -m flows.batch_scoring <csv or parquet under data/>", file=sys.stderr)
        return 2
    telemetry_off()
    try:
        result = batch_scoring(argv[0])
    except Exception as exc:  # noqa: BLE001 - one clear line for the user
        print(f"batch scoring FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"{result['rows']} rows scored with {result['model_version']}: {result['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
