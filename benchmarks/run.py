"""``make bench``: measure the workflow against plain baselines, side by side, in one run.

1. Training: the Prefect flow (``python -m flows.training``: DVC stages, experiment, push,
   registration) against :mod:`benchmarks.plain` (the same step functions in one process),
   on fresh project copies with the same params, at each size: wall time, peak memory of
   the whole process tree, and the difference (orchestration's fixed cost).
2. A re-run with nothing changed: the flow, and ``dvc repro``.
3. The API (``make serve``'s server: one worker per core, the previous champion in shadow)
   under ``hey`` at 1, 8 and 32 connections and batches of 1,000 over 4; in-process, the
   compiled per-record path against the pandas path (the baseline), and the other model kinds.
4. Monitoring: a window of predictions the API itself logged (1M rows in the full run) read
   back, and the monitoring flow over it.
5. The Dask engine (a local cluster of two workers) against local, plain script, same data.
6. Scale (:mod:`benchmarks.scale`): every stage's own process at growing sizes (1M and 3M
   rows by default, ``--scale-sizes`` for more): peak memory and wall time per stage.
7. Scale through the flow (opt-in: ``--only scale-flow``): the whole training flow at the
   scale sizes, the largest single process of each stage, DVC push and registration.

Results: ``benchmarks/results.json`` and ``benchmarks/results.md``. ``--quick`` runs all of
it on small data (the CI smoke test); its figures are not the ones to quote.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import scale as scale_bench
from benchmarks.measure import latency_summary, run_measured
from benchmarks.served import api_records, champion
from devtools.project import SMALL, deep_merge, make_project, register_copy
from devtools.services import start_api, start_server, stop
from tasks.core.env import TELEMETRY_OFF

REPO = Path(__file__).resolve().parents[1]
TARGETS = {
    "training_ratio_1m": 1.3,
    "rerun_s": 10.0,
    "compiled_p50_ms": 0.3,
    "api_p99_ms_8_clients": 15.0,
    "api_rps_8_clients": 1500,
    "api_batch_rows_per_s": 50000,
    "monitoring_read_s_1m": 3.0,
    "monitoring_s_1m": 15.0,
}

# Small-data settings for --quick (and the Dask comparison's size there): the tests' small
# profile without its window (the bench sizes its own), slices of 200+ test rows only.
QUICK = deep_merge(
    {k: v for k, v in SMALL.items() if k != "collect"},
    {"evaluate": {"slice_min_rows": 200}, "promote": {"bootstrap_samples": 100}},
)


def log(message: str) -> None:
    """Progress on stderr, timestamped."""
    print(f"{dt.datetime.now():%H:%M:%S} bench: {message}", file=sys.stderr, flush=True)


def overrides(rows: int, quick: bool, engine: str = "local") -> dict[str, Any]:
    """Params for a project of about ``rows`` simulated rows."""
    days = 60 if quick else 366
    start = dt.date(2024, 1, 1)
    out: dict[str, Any] = {
        "collect": {
            "window": {"start": str(start), "end": str(start + dt.timedelta(days=days - 1))},
            "simulator": {"customers_per_day": math.ceil(rows / days)},
        },
        "compute": {"engine": engine},
    }
    return {**QUICK, **out} if quick else out


def project(work: Path, name: str, params: dict[str, Any]) -> Path:
    """A fresh copy of this checkout (a git repository with its own DVC remote)."""
    dest = work / name
    dest.mkdir(parents=True)
    return make_project(dest, params, repo=REPO, name="churn-bench", tooling=True)


def rows_of(root: Path) -> int:
    """Rows the collect step read (from the clean step's report)."""
    return int(json.loads((root / "reports" / "clean.json").read_text())["rows_in"])


def test_roc_auc(root: Path) -> float:
    """The sealed test set's ROC-AUC of the run in ``root``."""
    return float(json.loads((root / "reports" / "metrics.json").read_text())["test"]["roc_auc"])


# --------------------------------------------------------------------------- 1, 2: training
def bench_training(
    work: Path, env: dict[str, str], rows: int, quick: bool
) -> tuple[dict[str, Any], Path]:
    """Plain script and flow on twin projects; returns the figures and the flow's project."""
    plain_root = project(work, f"plain-{rows}", overrides(rows, quick))
    flow_root = project(work, f"flow-{rows}", overrides(rows, quick))
    log(f"training at ~{rows:,} rows: plain script")
    plain = run_measured(
        [sys.executable, "-m", "benchmarks.plain"], plain_root, env, work / f"plain-{rows}.log"
    )
    log(f"  plain {plain['seconds']} s, {plain['peak_mb']} MB; now the Prefect flow")
    flow = run_measured(
        [sys.executable, "-m", "flows.training"], flow_root, env, work / f"flow-{rows}.log"
    )
    log(f"  flow {flow['seconds']} s, {flow['peak_mb']} MB")
    return {
        "size": rows,
        "rows": rows_of(flow_root),
        "plain": plain,
        "flow": flow,
        "wall_ratio": round(flow["seconds"] / plain["seconds"], 3),
        "memory_ratio": round(flow["peak_mb"] / plain["peak_mb"], 3),
        "fixed_cost_s": round(flow["seconds"] - plain["seconds"], 1),
        "plain_test_roc_auc": test_roc_auc(plain_root),
        "flow_test_roc_auc": test_roc_auc(flow_root),
    }, flow_root


def bench_rerun(root: Path, env: dict[str, str], work: Path) -> dict[str, Any]:
    """Nothing changed: the flow again, then ``dvc repro``."""
    log("re-run with nothing changed: flow, then dvc repro")
    flow = run_measured(
        [sys.executable, "-m", "flows.training"], root, env, work / "rerun-flow.log"
    )
    repro = run_measured([sys.executable, "-m", "dvc", "repro"], root, env, work / "rerun-dvc.log")
    ran = [
        line
        for line in (work / "rerun-flow.log").read_text().splitlines()
        if " ran " in line and "stage" in line
    ]
    return {"flow_s": flow["seconds"], "dvc_repro_s": repro["seconds"], "stages_rerun": len(ran)}


# --------------------------------------------------------------------------- 3: the API
def with_shadow(root: Path) -> None:
    """Promote a copy of the champion, so the previous one scores in shadow (as after a
    promotion): the API figures are measured with the shadow's work included."""
    from tasks.core.config import load_params
    from tasks.core.serving.registry import open_registry

    registry = open_registry(root, load_params(root / "params.yaml"))
    registry.promote(register_copy(registry).version, "bench: the previous champion in shadow")


def per_record(call: Any, records: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """p50/p99 of ``call(record)`` over ``n`` records, in-process."""
    times = []
    for k in range(n):
        t0 = time.perf_counter()
        call(records[k % len(records)])
        times.append(time.perf_counter() - t0)
    return latency_summary(times, sum(times))


def other_models(root: Path, records: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """The compiled path of the other candidate kinds, refitted on (part of) the train split:
    XGBoost through ``inplace_predict``, the random forest's fallback (scikit-learn's own
    ``predict_proba`` on the compiled row), and a regression's ridge and XGBoost regressor
    (fitted to the same rows' label as a number: their latency, not their answers)."""
    import dataclasses

    import pandas as pd

    from scoring.compiled import CompiledModel
    from tasks.core.ml.models import build_pipeline, model_inputs
    from tasks.core.ml.objective import objective_for
    from tasks.core.paths import PATHS

    params, model = champion(root)
    train = pd.read_parquet(root / PATHS.train)
    train = train.sample(min(len(train), 20_000), random_state=0)
    X, y, _, _ = model_inputs(train, params.problem)
    card = model.version.card
    out = {}
    boost = {"n_estimators": 300, "max_depth": 5, "learning_rate": 0.05}
    regression = model.problem.model_copy(
        update={"type": "regression", "positive_label": None, "primary_metric": "rmse"}
    )
    kinds = {
        "xgboost": ("xgboost", model.problem, boost),
        "random_forest": (
            "random_forest",
            model.problem,
            {"n_estimators": 300, "max_depth": 16, "min_samples_leaf": 5},
        ),
        "ridge_regression": ("ridge", regression, {"alpha": 1.0}),
        "xgboost_regression": ("xgboost", regression, boost),
    }
    for name, (kind, problem, fitted) in kinds.items():
        objective = objective_for(problem)
        pipeline = build_pipeline(
            kind,
            card["numeric_features"],
            card["categorical_features"],
            fitted,
            0,
            objective=objective,
        )
        pipeline.fit(X, objective.labels(y))
        other = dataclasses.replace(model, model=pipeline, problem=problem)
        object.__setattr__(other, "compiled", CompiledModel(other))
        out[name] = per_record(other.score_one, records, n)
        log(f"  in-process compiled {name}: {out[name]}")
    return out


def bench_api(root: Path, env: dict[str, str], work: Path, quick: bool) -> dict[str, Any]:
    """``make serve``'s server under ``hey`` (1, 8 and 32 connections; batches of 1,000 over
    4), with the previous champion in shadow; in-process: the pandas path (the baseline), the
    compiled path and the model alone."""
    from benchmarks.load import hey, hey_binary
    from service.serve import default_workers

    hey_binary()  # installed before anything starts
    records = api_records(root, 5000)
    with_shadow(root)
    requests = {1: 300, 8: 1000, 32: 1000} if quick else {1: 2000, 8: 20000, 32: 20000}
    batches = 40 if quick else 400
    api_env = {**env, "DATABASE_URL": f"sqlite:///{work / 'api-predictions.db'}"}
    workers = default_workers()
    proc, url = start_api(
        root, api_env, work / "api.log", timeout_s=120, quiet=True, workers=workers
    )
    single, batch = work / "single.json", work / "batch.json"
    single.write_text(json.dumps(records[0]))
    batch.write_text(json.dumps({"records": records[:1000]}))
    out: dict[str, Any] = {"workers": workers, "shadow": True, "http": {}}
    try:
        hey(url + "/predict", single, 4, 400)  # warm-up
        for connections, n in requests.items():
            figures = hey(url + "/predict", single, connections, n)
            out["http"][f"{connections}_clients"] = figures
            log(f"  API, 1 record, {connections:>2} connections: {figures}")
        figures = hey(url + "/predict", batch, 4, batches)
        # rows predicted (and logged) a second: only 200s count, a 503 predicted nothing
        figures["rows_per_s"] = round(figures["rps"] * figures["ok_share"] * 1000, 1)
        out["http"]["batch_1000_4_clients"] = figures
        log(f"  API, batches of 1,000, 4 connections: {figures}")
    finally:
        stop(proc)
    out["bare"] = bare_endpoint(root, env, work, workers, requests[8])
    ours = out["http"]["8_clients"]
    out["vs_bare_8_clients"] = {
        "rps_ratio": round(ours["rps"] / out["bare"]["rps"], 2),
        "p99_ratio": round(ours["p99_ms"] / out["bare"]["p99_ms"], 2),
    }
    log(f"  API vs the bare endpoint, 8 connections: {out['vs_bare_8_clients']}")
    _, model = champion(root)
    n = 300 if quick else 3000
    out["pandas_path"] = per_record(lambda r: model.score([r]), records, n)  # the baseline
    out["compiled"] = per_record(model.score_one, records, 20 * n)
    X = model.prepare(records[:1])
    out["model_only"] = per_record(lambda _: model.model.predict_proba(X), records, n)
    started = time.perf_counter()
    for _ in range(2 if quick else 10):
        model.score(records[:1000])
    out["pandas_batch_rows_per_s"] = round(
        (2 if quick else 10) * 1000 / (time.perf_counter() - started), 1
    )
    log(f"  in-process: pandas {out['pandas_path']}, compiled {out['compiled']}")
    out["other_models"] = other_models(root, records, n)
    out["compiled_speedup_p50"] = round(out["pandas_path"]["p50_ms"] / out["compiled"]["p50_ms"], 1)
    return out


def bare_endpoint(
    root: Path, env: dict[str, str], work: Path, workers: int, requests: int
) -> dict[str, Any]:
    """The floor: the champion's model on a ready vector behind Starlette and orjson, with the
    same workers (:mod:`benchmarks.bare`), under the same load as our 8-connection run."""
    from benchmarks.bare import start
    from benchmarks.load import hey

    body = work / "single.json"
    proc, url = start(root, env, work / "bare.log", workers)
    try:
        hey(url + "/predict", body, 4, 400)  # warm-up
        figures = hey(url + "/predict", body, 8, requests)
    finally:
        stop(proc)
    log(f"  bare endpoint, 1 record, 8 connections: {figures}")
    return figures


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def _post(conn: http.client.HTTPConnection, body: bytes, patience_s: float = 30.0) -> int:
    """Post one body as a well-behaved client does: a 503 is retried after its
    ``Retry-After``; returns how many 503s it took."""
    deadline, refused = time.monotonic() + patience_s, 0
    while True:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        if response.status == 200:
            return refused
        if response.status != 503 or time.monotonic() > deadline:
            raise RuntimeError(f"/predict answered {response.status}: {payload[:300]!r}")
        refused += 1
        time.sleep(float(response.getheader("Retry-After") or 1))


# --------------------------------------------------------------------------- 4: monitoring
def bench_monitoring(root: Path, env: dict[str, str], work: Path, rows: int) -> dict[str, Any]:
    """``rows`` predictions written by the multi-worker API itself (batches of 1,000 from four
    clients), then: reading the window back, and the monitoring flow over it."""
    import threading

    from scoring.store import PredictionStore, log_dir_of
    from service.serve import default_workers
    from tasks.core.config import load_params
    from tasks.core.serving.registry import registry_dir

    registry = registry_dir(root, load_params(root / "params.yaml"))
    shutil.rmtree(log_dir_of(registry), ignore_errors=True)  # the API benchmark's log
    url = f"sqlite:///{work / 'monitoring-predictions.db'}"
    pool = api_records(root, min(rows, 200_000))
    bodies = [
        json.dumps({"records": [pool[(k + i) % len(pool)] for i in range(1000)]}).encode()
        for k in range(0, min(len(pool), 50_000), 1000)
    ]
    log(f"monitoring: the API logs {rows:,} predictions")
    proc, api = start_api(
        root,
        {**env, "DATABASE_URL": url},
        work / "monitoring-api.log",
        timeout_s=120,
        quiet=True,
        workers=default_workers(),
    )
    port = int(api.rsplit(":", 1)[1])
    todo = list(range(0, rows, 1000))
    lock = threading.Lock()
    refused = [0]  # 503s the clients retried (a log falling behind sheds load)
    started = time.perf_counter()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if not todo:
                    return
                k = todo.pop()
            retried = _post(conn, bodies[(k // 1000) % len(bodies)])
            with lock:
                refused[0] += retried

    try:
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        logged_s = time.perf_counter() - started
    finally:
        stop(proc)  # SIGTERM: every answered prediction is flushed
    log(f"monitoring: logged in {logged_s:.1f} s ({refused[0]} retried 503s); reading it back")
    store = PredictionStore(url, log_dir=log_dir_of(registry))
    now = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    frame = store.window_frame(now - dt.timedelta(hours=24), now + dt.timedelta(minutes=1))
    read_s = time.perf_counter() - t0
    store.close()
    if len(frame) < rows:
        raise RuntimeError(f"the window holds {len(frame):,} rows, {rows:,} were logged")
    log(f"monitoring: read {len(frame):,} rows in {read_s:.2f} s; running the flow")
    figures = run_measured(
        [sys.executable, "-m", "flows.monitoring"],
        root,
        {**env, "DATABASE_URL": url},
        work / "monitoring.log",
    )
    return {
        "rows": rows,
        "api_logging_s": round(logged_s, 1),
        "api_logging_503s": refused[0],
        "read_s": round(read_s, 2),
        **figures,
    }


# --------------------------------------------------------------------------- 5: dask
def bench_dask(
    work: Path, env: dict[str, str], rows: int, quick: bool, local: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The plain script with ``compute.engine: dask`` (local cluster, two workers) against local.

    ``local``: the training benchmark's plain run at the same size, if there was one.
    """
    out: dict[str, Any] = {"rows": rows}
    if local is not None:
        out["local"] = {**local["plain"], "test_roc_auc": local["plain_test_roc_auc"]}
    for engine in ("dask",) if local is not None else ("local", "dask"):
        root = project(work, f"{engine}-engine", overrides(rows, quick, engine))
        log(f"{engine} engine at ~{rows:,} rows (plain script)")
        out[engine] = {
            **run_measured(
                [sys.executable, "-m", "benchmarks.plain"], root, env, work / f"{engine}-engine.log"
            ),
            "test_roc_auc": test_roc_auc(root),
        }
    out["wall_ratio"] = round(out["dask"]["seconds"] / out["local"]["seconds"], 3)
    out["roc_auc_difference"] = round(out["dask"]["test_roc_auc"] - out["local"]["test_roc_auc"], 4)
    return out


SCALE = {"train": {"n_trials": 1}, "evaluate": {"bootstrap_samples": 200}}
"""The scale section measures how each stage grows with the rows, not the tuning budget: one
trial (the starting parameters) keeps 10M rows near 40 minutes; each further trial adds a time
linear in the rows, and no memory (one model is kept at a time)."""


def bench_scale(
    work: Path, env: dict[str, str], sizes: list[int], quick: bool, earlier: list[dict[str, Any]]
) -> dict[str, Any]:
    """Every stage's process, measured, on a fresh project at each of ``sizes``; the ``earlier``
    runs of other sizes (from the last results.json) are kept, so one size can be run alone."""
    runs = [r for r in earlier if r.get("size") not in sizes and r.get("quick", False) == quick]
    for rows in sizes:
        params = deep_merge(overrides(rows, quick), SCALE)
        root = project(work, f"scale-{rows}", params)
        log(f"scale at ~{rows:,} rows: each stage in its own process")
        stages = scale_bench.bench_size(root, env, work)
        worst = max(stages, key=lambda s: stages[s]["peak_mb"])
        log(f"  largest: {worst} {stages[worst]['peak_mb']:.0f} MB")
        runs.append({"size": rows, "rows": rows_of(root), "quick": quick, "stages": stages})
    return scale_bench.summarise(runs)


def bench_scale_flow(
    work: Path, env: dict[str, str], sizes: list[int], quick: bool, earlier: list[dict[str, Any]]
) -> dict[str, Any]:
    """The whole training flow at each of ``sizes`` (the scale section's params), each stage's
    largest process measured; ``earlier`` runs of other sizes are kept."""
    runs = [r for r in earlier if r.get("size") not in sizes and r.get("quick", False) == quick]
    for rows in sizes:
        root = project(work, f"scale-flow-{rows}", deep_merge(overrides(rows, quick), SCALE))
        log(f"the training flow at ~{rows:,} rows, every process measured")
        figures = scale_bench.run_flow_measured(
            [sys.executable, "-m", "flows.training"], root, env, work / f"scale-flow-{rows}.log"
        )
        log(f"  {figures['seconds']:.0f} s; largest process {figures['largest_process_mb']:.0f} MB")
        runs.append({"size": rows, "rows": rows_of(root), "quick": quick, **figures})
    return {"limit_mb": scale_bench.STAGE_LIMIT_MB, "runs": sorted(runs, key=lambda r: r["rows"])}


# --------------------------------------------------------------------------- report
def markdown(results: dict[str, Any]) -> str:
    """The table the docs/performance.md quotes."""
    lines = [
        f"Measured {results['date']} on {results['machine']['cpus']} CPUs, "
        f"{results['machine']['memory_gb']} GB ({results['mode']} run).",
        "",
        "| benchmark | workflow | plain baseline | ratio | target |",
        "|---|---|---|---|---|",
    ]

    def cpu(figures: dict[str, Any]) -> str:
        return f" (CPU {figures['cpu_s']:.0f} s)" if "cpu_s" in figures else ""

    for t in results.get("training", []):
        target = (
            f"≤ {TARGETS['training_ratio_1m']}x"
            if t is results["training"][-1] and not results["quick"]
            else ""
        )
        lines.append(
            f"| training, {t['rows']:,} rows: wall | {t['flow']['seconds']:.1f} s{cpu(t['flow'])} "
            "| "
            f"{t['plain']['seconds']:.1f} s{cpu(t['plain'])} | {t['wall_ratio']:.2f}x "
            f"(+{t['fixed_cost_s']:.1f} s) | {target} |"
        )
        lines.append(
            f"| training, {t['rows']:,} rows: peak memory | {t['flow']['peak_mb']:.0f} MB | "
            f"{t['plain']['peak_mb']:.0f} MB | {t['memory_ratio']:.2f}x | |"
        )
    if "rerun" in results:
        r = results["rerun"]
        lines.append(
            f"| re-run, nothing changed: flow | {r['flow_s']:.1f} s | | | "
            f"< {TARGETS['rerun_s']:.0f} s |"
        )
        lines.append(f"| re-run, nothing changed: `dvc repro` | {r['dvc_repro_s']:.1f} s | | | |")
    if "api" in results:
        a = results["api"]
        base = a["pandas_path"]
        lines.append(
            f"| 1 record in-process, compiled path: p50 / p99 | {a['compiled']['p50_ms']:.3f} / "
            f"{a['compiled']['p99_ms']:.3f} ms | {base['p50_ms']:.2f} / {base['p99_ms']:.2f} ms "
            f"(pandas path) | {a['compiled_speedup_p50']:.0f}x faster | ≤ 0.3 ms (goal 0.15) |"
        )
        for kind, figures in a.get("other_models", {}).items():
            how = "fallback: its predict_proba" if kind == "random_forest" else "compiled"
            lines.append(
                f"| 1 record in-process, {kind.replace('_', ' ')} ({how}): p50 / p99 "
                f"| {figures['p50_ms']:.3f} / {figures['p99_ms']:.3f} ms | | | for the record |"
            )
        targets = {"1": "≤ 1.5 / 5 ms (goal 1 / 3)", "8": "≥ 1,500/s, p99 ≤ 15 ms", "32": ""}
        for key, h in a["http"].items():
            if not key.endswith("_clients") or key.startswith("batch"):
                continue
            n = key.split("_")[0]
            lines.append(
                f"| /predict, 1 record, {n} connection(s) ({a['workers']} workers, shadow on): "
                f"p50 / p99, req/s | {h['p50_ms']:.2f} / {h['p99_ms']:.2f} ms, {h['rps']:,.0f}/s | "
                f"{base['p50_ms']:.2f} / {base['p99_ms']:.2f} ms in-process (pandas) | "
                f"{base['p50_ms'] / h['p50_ms']:.1f}x (p50) | {targets[n]} |"
            )
        if "bare" in a:  # the floor any model server pays: our figures as a ratio of it
            bare, ours, ratio = a["bare"], a["http"]["8_clients"], a["vs_bare_8_clients"]
            lines.append(
                f"| /predict against the bare endpoint (Starlette, orjson, the model on a ready "
                f"vector; {a['workers']} workers), 8 connections: req/s, p99 | "
                f"{ours['rps']:,.0f}/s, {ours['p99_ms']:.1f} ms | {bare['rps']:,.0f}/s, "
                f"{bare['p99_ms']:.1f} ms (bare) | {ratio['rps_ratio']:.2f}x req/s, "
                f"{ratio['p99_ratio']:.2f}x p99 | for the record |"
            )
        b = a["http"]["batch_1000_4_clients"]
        shed, answers = b["statuses"].get(503, 0), sum(b["statuses"].values())
        lines.append(
            f"| /predict, batches of 1,000, 4 connections: rows/s (answered 200) "
            f"| {b['rows_per_s']:,.0f} ({shed} of {answers} answers 503: the log was behind) | "
            f"{a['pandas_batch_rows_per_s']:,.0f} in-process (one core) | "
            f"{b['rows_per_s'] / a['pandas_batch_rows_per_s']:.2f}x | ≥ 50,000 (goal 80,000) |"
        )
        lines.append(
            "| model alone (`predict_proba`, 1 prepared row): p50 / p99 | | "
            f"{a['model_only']['p50_ms']:.2f} / {a['model_only']['p99_ms']:.2f} ms | | |"
        )
    if "monitoring" in results:
        m = results["monitoring"]
        lines.append(
            f"| monitoring: read a {m['rows']:,}-row window the API wrote | {m['read_s']:.2f} s "
            "| | | ≤ 3 s |"
        )
        lines.append(
            f"| monitoring flow, {m['rows']:,}-row window | {m['seconds']:.1f} s, "
            f"{m['peak_mb']:.0f} MB | | | ≤ 15 s, ≤ 2 GB (goal 10 s) |"
        )
    d = results.get("dask")
    if d:  # a partial run (--only) may have none yet
        lines.append(
            f"| Dask engine (local cluster, 2 workers) vs local, {d['rows']:,} rows, plain script"
            f" | {d['dask']['seconds']:.1f} s, {d['dask']['peak_mb']:.0f} MB | "
            f"{d['local']['seconds']:.1f} s, "
            f"{d['local']['peak_mb']:.0f} MB | {d['wall_ratio']:.2f}x; test ROC-AUC "
            f"{d['roc_auc_difference']:+.4f} | for the record |"
        )
    if results.get("scale"):
        lines.extend(scale_bench.markdown(results["scale"]))
    if results.get("scale_flow"):
        lines.extend(scale_bench.flow_markdown(results["scale_flow"]))
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="small data: a smoke test of every benchmark"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="training sizes in rows (default 100000 1000000)"
    )
    parser.add_argument(
        "--monitoring-rows", type=int, help="rows in the monitoring window (default 1000000)"
    )
    parser.add_argument(
        "--dask-rows", type=int, help="rows of the Dask comparison (default 100000)"
    )
    parser.add_argument(
        "--scale-sizes",
        type=int,
        nargs="+",
        help="sizes of the scale section in rows (default 1000000 3000000; 10000000: +40 min)",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks", help="where results.json/.md go"
    )
    parser.add_argument(
        "--work", type=Path, help="keep the projects and logs here (default: a temporary folder)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS + OPT_IN,
        help="run these benchmarks only, updating the last results.json",
    )
    return parser.parse_args(argv)


SECTIONS = ("training", "rerun", "api", "monitoring", "dask", "scale")
OPT_IN = ("scale-flow",)
"""Run only when named in ``--only``: the whole training flow at the scale sizes (10M rows:
about an hour)."""


def main(argv: list[str]) -> int:
    """Run the benchmarks; write and print the results."""
    args = parse_args(argv)
    sizes = args.sizes or ([3000] if args.quick else [100_000, 1_000_000])
    monitoring_rows = args.monitoring_rows or (5000 if args.quick else 1_000_000)
    dask_rows = args.dask_rows or (3000 if args.quick else 100_000)
    scale_sizes = args.scale_sizes or ([3000, 6000] if args.quick else [1_000_000, 3_000_000])
    sections = args.only or list(SECTIONS)
    if set(sections) & {"rerun", "api", "monitoring"} and "training" not in sections:
        print(
            "rerun, api and monitoring run on the training benchmark's project: add 'training'",
            file=sys.stderr,
        )
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="churn-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server below on a kill too
    server = start_server(work / "prefect", ui=False)
    env = {
        **os.environ,
        **TELEMETRY_OFF,
        **{k: server.env[k] for k in ("PREFECT_API_URL", "PREFECT_HOME")},
        "CHURN_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DATABASE_URL", None)
    results: dict[str, Any] = {}
    if (
        args.only and (args.out / "results.json").exists()
    ):  # a partial run updates the last full one
        results = json.loads((args.out / "results.json").read_text())
    results.update(
        {
            "date": dt.date.today().isoformat(),
            "quick": args.quick,
            "mode": "quick" if args.quick else "full",
            "targets": TARGETS,
            "machine": machine(),
        }
    )
    try:
        log(f"work folder {work}; Prefect server {server.api_url}")
        if "training" in sections:
            results["training"] = [
                t for t in results.get("training", []) if t.get("size") not in sizes
            ]
            for rows in sizes:
                figures, flow_root = bench_training(work, env, rows, args.quick)
                results["training"].append(figures)
            results["training"].sort(key=lambda t: t["rows"])
        if "rerun" in sections:
            results["rerun"] = bench_rerun(flow_root, env, work)
        if "api" in sections:
            log("API")
            results["api"] = bench_api(flow_root, env, work, args.quick)
        if "monitoring" in sections:
            results["monitoring"] = bench_monitoring(flow_root, env, work, monitoring_rows)
        if "dask" in sections:
            same = [t for t in results.get("training", []) if t.get("size") == dask_rows]
            results["dask"] = bench_dask(
                work, env, dask_rows, args.quick, same[0] if same else None
            )
        if "scale" in sections:
            earlier = results.get("scale", {}).get("runs", [])
            results["scale"] = bench_scale(work, env, scale_sizes, args.quick, earlier)
        if "scale-flow" in sections:
            earlier = results.get("scale_flow", {}).get("runs", [])
            results["scale_flow"] = bench_scale_flow(work, env, scale_sizes, args.quick, earlier)
    finally:
        stop(server.proc)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "results.md").write_text(table)
    print(table)
    print(f"written: {args.out / 'results.json'}, {args.out / 'results.md'}")
    problems = sanity(results)
    for problem in problems:
        print(f"CHECK FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def sanity(results: dict[str, Any]) -> list[str]:
    """What must hold in any run, quick or full: the same work gives the same results.

    Speed targets are reported, never checked here: they depend on the machine.
    """
    problems = []
    for t in results.get("training", []):
        if abs(t["flow_test_roc_auc"] - t["plain_test_roc_auc"]) > 1e-9:
            problems.append(
                f"the flow and the plain script trained different models at {t['rows']} rows "
                f"(test ROC-AUC {t['flow_test_roc_auc']} vs {t['plain_test_roc_auc']})"
            )
    if results.get("rerun", {}).get("stages_rerun"):
        problems.append(
            f"a re-run with nothing changed ran {results['rerun']['stages_rerun']} stages"
        )
    if abs(results.get("dask", {}).get("roc_auc_difference", 0.0)) > 0.03:
        problems.append(
            "the Dask engine's test ROC-AUC differs from local by "
            f"{results['dask']['roc_auc_difference']}"
        )
    return problems


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
