"""The batch scoring flow: score a file with the champion, log it like the API does.

``make score IN=data/external/new.csv`` or ``python -m flows.batch_scoring <file>``. The
file (CSV or Parquet, under ``data/`` like any source) is read as the source delivers it,
one chunk at a time (so a file of any size fits), scored through the same cleaning and
feature code as training, and written, chunk by chunk, to
``data/06_predictions/<file>.<model version>.parquet`` with the model version on every row.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import project_root
from tasks.core.config import load_params
from tasks.core.data.sources import csv_parts, parquet_parts, safe_source_path
from tasks.core.env import telemetry_off
from tasks.core.io import write_parts
from tasks.core.paths import PATHS
from tasks.core.serving.fields import RecordError
from tasks.core.serving.registry import open_registry, registry_dir
from tasks.core.serving.scoring import LoadedModel
from tasks.core.serving.store import PredictionStore, open_store

OUTPUT_DIR = PATHS.predictions_dir


@task(name="score-chunk", cache_policy=NO_CACHE)
def score_chunk(
    model: LoadedModel, chunk: pd.DataFrame, store: PredictionStore, batch_id: str, number: int
) -> pd.DataFrame:
    """Score one chunk and log it to the prediction store."""
    records = chunk.astype(object).where(chunk.notna(), None).to_dict(orient="records")
    try:
        proba, X = model.score(records)
    except RecordError as exc:  # name the row of the file, not of the chunk
        raise RecordError(int(chunk.index[exc.index]), exc.field, exc.reason) from None
    decisions = (proba >= model.threshold).astype(int)
    ids = model.record_ids(records)
    store.log(
        f"{batch_id}-{number:05d}",
        model.version.version,
        model.logged_ids(ids),
        X.to_dict(orient="records"),
        proba.tolist(),
        decisions.tolist(),
    )
    return pd.DataFrame(
        {
            model.problem.id_column or "row": ids if model.problem.id_column else chunk.index,
            "probability": proba,
            "decision": decisions,
            "model_version": model.version.version,
            "request_id": f"{batch_id}-{number:05d}",
        }
    )


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
    store = open_store(registry_dir(root, params))
    batch_id = "batch-" + uuid.uuid4().hex[:12]
    rows = positive = 0
    try:  # one chunk in memory at a time; the output appears whole or not at all
        with write_parts(target) as out:
            for n, (chunk, _) in enumerate(chunks):
                if chunk.empty:
                    continue
                chunk.index = pd.RangeIndex(rows, rows + len(chunk))  # rows of the file
                scored = score_chunk(model, chunk, store, batch_id, n)
                out.write(scored)
                rows += len(scored)
                positive += int(scored["decision"].sum())
                logger.info("scored %d rows", rows)
            if not rows:
                raise ValueError(f"{input_path} holds no rows (a header only?): nothing to score")
            out.close()
    finally:
        store.close()
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
