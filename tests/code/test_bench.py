"""The benchmark harness: its baseline runs the same steps as dvc.yaml, its measures are real."""

from __future__ import annotations

import sys

from benchmarks.measure import concurrent, latency_summary, run_measured
from benchmarks.plain import STEPS
from benchmarks.run import markdown, sanity
from flows.runtime.pipeline import load_stages
from tests.conftest import REPO


def test_the_plain_baseline_runs_the_stages_of_dvc_yaml_in_order():
    assert [name for name, _ in STEPS] == [s.name for s in load_stages(REPO / "dvc.yaml")]


def test_peak_memory_counts_the_child_processes(tmp_path):
    # the parent holds little; its child holds 300 MB: the tree's peak must show it
    child = (
        "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
        "sum(range(2 * 10**7)); time.sleep(1)"
    )
    parent = (
        f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], check=True)"
    )
    figures = run_measured([sys.executable, "-c", parent], tmp_path, {}, tmp_path / "log")
    assert figures["peak_mb"] > 300 and 1 <= figures["seconds"] < 30
    assert figures["cpu_s"] >= 0.2, "the grandchild's CPU time is counted"


def test_the_flow_at_scale_is_measured_process_by_process_and_stage_by_stage(tmp_path):
    from benchmarks.scale import flow_markdown, run_flow_measured

    # a stand-in for the flow: stage 'big' runs a child holding 300 MB, stage 'small' does not
    child = (
        "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1)"
    )
    flow = (
        "import subprocess, sys, time\n"
        "print(\"Running stage 'big':\", flush=True)\n"
        f"subprocess.run([sys.executable, '-c', {child!r}], check=True)\n"
        "print(\"Running stage 'small':\", flush=True)\n"
        "time.sleep(1)\n"
    )
    figures = run_flow_measured([sys.executable, "-c", flow], tmp_path, {}, tmp_path / "log")
    big, small = figures["stages"]["big"], figures["stages"]["small"]
    assert big["largest_mb"] > 300 > small["largest_mb"], figures
    assert "-c" in big["largest"] and figures["largest_process_mb"] == big["largest_mb"]
    assert figures["under_limit"] and figures["tree_peak_mb"] >= big["largest_mb"]
    table = "\n".join(flow_markdown({"runs": [{**figures, "rows": 1000}]}))
    assert "| 1,000 |" in table and "big 3" in table and "under the bound" in table


def test_latencies_come_from_every_client():
    latencies, wall = concurrent(lambda state: state.setdefault("n", 0), clients=4, per_client=5)
    summary = latency_summary(latencies, wall)
    assert (
        summary["requests"] == 20 and summary["p50_ms"] <= summary["p99_ms"] and summary["rps"] > 0
    )


def test_the_table_and_the_sanity_checks():
    run = {
        "plain": {"seconds": 10.0, "peak_mb": 400.0},
        "flow": {"seconds": 12.0, "peak_mb": 500.0},
        "rows": 1000,
        "wall_ratio": 1.2,
        "memory_ratio": 1.25,
        "fixed_cost_s": 2.0,
        "plain_test_roc_auc": 0.8,
        "flow_test_roc_auc": 0.8,
    }
    http = {"p50_ms": 5.0, "p99_ms": 9.0, "rps": 100.0}
    results = {
        "date": "2026-11-23",
        "quick": False,
        "mode": "full",
        "machine": {"cpus": 2, "memory_gb": 24},
        "training": [run],
        "rerun": {"flow_s": 8.0, "dvc_repro_s": 1.0, "stages_rerun": 0},
        "api": {
            "workers": 2,
            "http": {
                "1_clients": http,
                "8_clients": http,
                "32_clients": http,
                "batch_1000_4_clients": {
                    **http,
                    "rows_per_s": 9000.0,
                    "statuses": {200: 90, 503: 10},
                },
            },
            "pandas_path": {"p50_ms": 30.0, "p99_ms": 60.0, "rps": 30.0},
            "compiled": {"p50_ms": 0.05, "p99_ms": 0.1, "rps": 20000.0},
            "compiled_speedup_p50": 600.0,
            "pandas_batch_rows_per_s": 10000.0,
            "model_only": http,
            "other_models": {"random_forest": http},
        },
        "monitoring": {"rows": 1000, "read_s": 0.5, "seconds": 5.0, "peak_mb": 300.0},
        "dask": {
            "rows": 1000,
            "local": {"seconds": 10.0, "peak_mb": 400.0},
            "dask": {"seconds": 14.0, "peak_mb": 900.0},
            "wall_ratio": 1.4,
            "roc_auc_difference": 0.001,
        },
    }
    table = markdown(results)
    assert "| training, 1,000 rows: wall | 12.0 s | 10.0 s | 1.20x (+2.0 s) | ≤ 1.3x |" in table
    assert "/predict, 1 record, 8 connection(s) (2 workers, shadow on)" in table
    assert "0.050 / 0.100 ms | 30.00 / 60.00 ms (pandas path) | 600x faster" in table
    assert "random forest (fallback: its predict_proba)" in table
    assert sanity(results) == []
    results["rerun"]["stages_rerun"] = 2
    results["dask"]["roc_auc_difference"] = 0.05
    assert len(sanity(results)) == 2
