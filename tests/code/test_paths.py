"""dvc.yaml must name the same paths as tasks/core/paths.py."""

from __future__ import annotations

from dataclasses import asdict

from flows.runtime.pipeline import load_stages
from tasks.core.paths import PATHS
from tests.conftest import REPO

CODE_PREFIXES = ("tasks/", "flows/")


def test_every_data_and_report_path_in_dvc_yaml_is_defined_in_the_paths_module():
    defined = set(asdict(PATHS).values())
    for stage in load_stages(REPO / "dvc.yaml"):
        for path in (*stage.deps, *stage.outs):
            if path.startswith(CODE_PREFIXES):
                assert (REPO / path).exists(), f"stage {stage.name}: {path} does not exist"
                continue
            assert path in defined, (
                f"stage {stage.name}: '{path}' is not a name in tasks/core/paths.py"
            )


def test_every_stage_output_folder_or_file_is_written_by_exactly_one_stage():
    seen: dict[str, str] = {}
    for stage in load_stages(REPO / "dvc.yaml"):
        for out in stage.outs:
            assert out not in seen, f"{out} is an output of both {seen[out]} and {stage.name}"
            seen[out] = stage.name
