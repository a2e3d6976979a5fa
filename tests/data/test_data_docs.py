"""Data Docs keep every validation and read offline, as a browser with no network shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from devtools.services import chromium, chromium_or_skip
from tasks.core.quality.data_docs import DocsTarget, assets_dir, finish
from tasks.core.quality.validation import read_suite_file, validate_frame
from tests.conftest import REPO

SUITE = {
    "name": "tiny",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "a", "min_value": 0, "max_value": 10},
        },
    ],
}


def validate_runs(docs_root: Path, runs: int, keep: int) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3]})
    audit = pd.DataFrame(
        {
            "subject": ["rows"],
            "copy_excess": [-0.1],
            "id_n_splits": [1.0],
            "split_time_ordered": [float("nan")],
            "post_outcome_present": [0.0],
            "feature_auc": [0.6],
        }
    )
    leakage = read_suite_file(REPO / "expectations" / "leakage.json")
    for k in range(runs):
        validate_frame(frame, SUITE, "raw", DocsTarget(docs_root, "raw", f"snapshot S{k}", keep))
        validate_frame(
            audit,
            leakage,
            "leakage",
            DocsTarget(docs_root, "leakage", f"split of snapshot S{k}", keep),
            parameters={"max_single_feature_auc": 0.9},
        )


def test_every_validation_is_kept_named_by_its_snapshot_up_to_the_limit(tmp_path):
    validate_runs(tmp_path, runs=3, keep=2)
    for site in ("raw", "leakage"):
        runs = json.loads((tmp_path / site / "runs.json").read_text())
        assert [r["run_name"].split()[-1] for r in runs] == ["S1", "S2"]  # S0 pruned
        assert all((tmp_path / site / r["page"]).exists() for r in runs)
        assert "__none__" not in json.dumps(runs)
        assert not list((tmp_path / site / "kept").rglob("*S0*"))
    index = (tmp_path / "index.html").read_text()
    assert index.count("Raw data suite") == 2 and index.count("Leakage audit") == 2


@pytest.mark.slow
def test_the_index_opens_styled_with_the_network_off_and_lists_both_validations(tmp_path):
    chromium_or_skip()
    if not (assets_dir() / "vendor").is_dir():
        pytest.fail("make install fetches the Data Docs assets (npm): they are missing")
    from selenium.webdriver.common.by import By

    validate_runs(tmp_path, runs=1, keep=5)
    finish(tmp_path)
    driver = chromium(
        # no network: every name resolves to nothing, and no proxy can be reached
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=127.0.0.1:9",
        "--allow-file-access-from-files",
        performance_log=True,
    )
    try:
        pages = [tmp_path / "index.html"]
        driver.get((tmp_path / "index.html").as_uri())
        rows = driver.find_elements(By.CSS_SELECTOR, "#validations tbody tr")
        assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == [
            "Leakage audit",
            "Raw data suite",
        ] or sorted(r.find_element(By.TAG_NAME, "td").text for r in rows) == [
            "Leakage audit",
            "Raw data suite",
        ]
        links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "td a")]
        font = driver.execute_script("return getComputedStyle(document.body).fontFamily")
        assert "-apple-system" in font, f"bootstrap's font stack missing: {font}"
        for link in links:  # each validation page, styled by the local bootstrap too
            driver.get(link)
            pages.append(Path(link))
            font = driver.execute_script("return getComputedStyle(document.body).fontFamily")
            assert "-apple-system" in font, (link, font)
            assert "Expectation" in driver.find_element(By.TAG_NAME, "body").text
        requests = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
        urls = {
            m["params"]["request"]["url"]
            for m in requests
            if m["method"] == "Network.requestWillBeSent"
        }
        failed = [m["params"] for m in requests if m["method"] == "Network.loadingFailed"]
    finally:
        driver.quit()
    remote = sorted(u for u in urls if not u.startswith(("file:", "data:", "about:")))
    assert not remote, f"pages asked the network for {remote[:5]}"
    assert not failed, failed[:3]
