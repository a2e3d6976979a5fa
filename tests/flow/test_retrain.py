"""A retraining that fails (early, or late at the gate) leaves the champion serving, and says why.

While it runs, the API on the same registry answers every request with the champion.
"""

from __future__ import annotations

import json
import shutil
import threading

import pytest
import yaml
from fastapi.testclient import TestClient

from devtools.project import git
from flows.retrain import retrain
from service.app import create_app
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry
from tests.conftest import without_served_state

pytestmark = pytest.mark.slow


class Traffic:
    """Requests to the API on the project's registry, from a thread, until stopped."""

    def __init__(self, root, record) -> None:
        self.client = TestClient(create_app(root / "registry", poll_s=0.05))
        self.record, self.answers, self.stop = record, [], threading.Event()
        self.shed = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with self.client:
            while not self.stop.is_set():
                reply = self.client.post("/predict", json=self.record)
                if reply.status_code == 503 and reply.headers.get("Retry-After"):
                    # load shed (the log behind on a busy machine): a well-behaved client
                    # retries, as documented; a 503 without Retry-After (no model) counts
                    self.shed += 1
                    self.stop.wait(float(reply.headers["Retry-After"]))
                    continue
                self.answers.append((reply.status_code, reply.json().get("model_version")))
                self.stop.wait(0.1)  # steady traffic, not a CPU hog beside the retraining

    def __enter__(self) -> "Traffic":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(30)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        # an impossible feasibility bar: the run stops at step 2, after collecting
        ({"feasibility.min_labelled_rows": 10_000_000}, "feasibility"),
        # an impossible KPI floor: every step runs, the gate at step 9 refuses the model
        ({"problem.kpis.roc_auc_min": 0.999}, "not blessed"),
    ],
    ids=["fails-at-feasibility", "refused-at-the-gate"],
)
def test_a_failed_retraining_leaves_the_champion_in_place(
    trained_project, tmp_path, prefect_api, params, says
):
    root = tmp_path / "proj"
    shutil.copytree(trained_project, root, ignore=without_served_state())
    # the operator of this checkout allows these overrides (retrain.allowed_overrides)
    served = yaml.safe_load((root / "params.yaml").read_text())
    served.setdefault("retrain", {})["allowed_overrides"] = ["feasibility.*", "problem.kpis.*"]
    served["retrain"]["override_limits"] = {"feasibility.*": 1e8, "problem.kpis.*": 1}
    (root / "params.yaml").write_text(yaml.safe_dump(served, sort_keys=False))
    registry = Registry(root / "registry")
    champion, aliases, history = (
        registry.champion().version,
        registry.aliases(),
        len(registry.history()),
    )
    versions = [v.version for v in registry.versions()]
    raw = current_snapshot(root / PATHS.raw_dir).read().head(1)
    record = json.loads(
        raw.drop(columns=["churned_30d", "cancellation_reason"]).to_json(orient="records")
    )[0]
    with Traffic(root, record) as traffic:
        state = retrain(
            reason="test: failing run", params=params, project_dir=str(root), return_state=True
        )
    prefect_api.check_alive()
    assert traffic.answers and set(traffic.answers) == {(200, champion)}, (
        "the API served the champion throughout"
    )
    result = repr(state.result(raise_on_failure=False))
    assert says in str(state.message) or says in result, (state, result[:2000])
    assert registry.champion().version == champion and registry.aliases() == aliases
    assert [v.version for v in registry.versions()] == versions and len(
        registry.history()
    ) == history, "nothing registered, nothing switched"
    if says == "feasibility":
        assert state.is_failed()
        kept = list((root / "runs").glob("*/reports/feasibility.md"))
        assert len(kept) == 1 and "NO-GO" in kept[0].read_text(), "the failed run's reports say why"
    assert not any((root / ".runs").iterdir()) and git(root, "worktree", "list").count("\n") == 1
