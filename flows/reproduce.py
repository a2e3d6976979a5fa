"""Reproduce a recorded training run: ``make reproduce RUN=<experiment name>``.

Restores the run's params, ``dvc.lock`` and data (from the DVC remote if needed), then
re-executes every stage after collection with ``dvc repro`` and checks that each output
has the hash the run recorded.
"""

from __future__ import annotations

import argparse
import sys

from flows.runtime.experiments import reproduce_run
from flows.runtime.pipeline import load_stages
from tasks.core.paths import PATHS, find_project_root


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="experiment name, as listed by `dvc exp show`")
    parser.add_argument(
        "--git-remote", default="origin", help="where to fetch the experiment if not local"
    )
    args = parser.parse_args(argv)
    root = find_project_root()
    stages = load_stages(root / PATHS.dvc_yaml)
    sources = tuple(s.name for s in stages if PATHS.raw_dir in s.outs)
    try:
        diff = reproduce_run(
            root, args.name, sources, [s.name for s in stages], git_remote=args.git_remote
        )
    except RuntimeError as exc:
        print(f"reproduce FAILED: {exc}", file=sys.stderr)
        return 1
    if diff:
        print(f"\nrun '{args.name}' did NOT reproduce exactly:", file=sys.stderr)
        for path, (old, new) in diff.items():
            print(f"  {path}: recorded {old[:12]}, now {new[:12]}", file=sys.stderr)
        return 1
    print(f"\nrun '{args.name}' reproduced: every output has its recorded hash")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
