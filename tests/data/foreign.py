"""A foreign dataset for tests: nothing in common with the simulator's columns, messy, no time
column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CONTRACT_SPELLINGS = {
    "Monthly": ["Monthly", "monthly", "MONTHLY ", " Monthly"],
    "Annual": ["Annual", "annual"],
    "Biennial": ["Biennial", "BIENNIAL"],
}


def foreign_frame(n: int = 2500, seed: int = 0, leak: bool = False) -> pd.DataFrame:
    """Accounts of a made-up telecom: ``Left?`` (Yes/No) is the label, ``AcctNo`` the id."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    fee = np.round(rng.uniform(18, 120, n), 2)
    kind = rng.choice(list(CONTRACT_SPELLINGS), n, p=[0.55, 0.25, 0.2])
    calls = rng.poisson(1.0, n)
    fiber = rng.random(n) < 0.45
    logit = (
        -1.0
        - 0.05 * tenure
        + 0.02 * (fee - 60)
        + 1.2 * (kind == "Monthly")
        + 0.5 * calls
        + 0.4 * fiber
    )
    left = rng.random(n) < 1 / (1 + np.exp(-logit))
    spelled = [CONTRACT_SPELLINGS[k][rng.integers(len(CONTRACT_SPELLINGS[k]))] for k in kind]
    total = np.char.mod("%.2f", tenure * fee).astype(object)
    total[tenure == 0] = " "
    frame = pd.DataFrame(
        {
            "AcctNo": [f"{7000 + i:05d}-QX" for i in range(n)],
            "Tenure Mo": tenure.astype(str),
            "Monthly Fee": fee.astype(str),
            "Total Billed": total,
            "Contract Kind": spelled,
            "Fiber": np.where(fiber, "Yes", "No"),
            "Support Calls": calls.astype(str),
            "Joined": [("2021-05-0%d" if i % 2 else "05/0%d/2021") % (1 + i % 9) for i in range(n)],
            "Left?": np.where(left, "Yes", "No"),
        }
    )
    frame.loc[rng.random(n) < 0.03, "Monthly Fee"] = ""
    frame.loc[rng.random(n) < 0.002, "Monthly Fee"] = "n/a"
    if leak:
        frame["Exit Survey Score"] = (
            np.where(left, rng.uniform(6, 10, n), rng.uniform(0, 4, n)).round(1).astype(str)
        )
    return pd.concat([frame, frame.sample(30, random_state=seed)], ignore_index=True)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


FOREIGN_PARAMS = {
    "collect": {"source": "csv", "path": "data/external/telco_like.csv"},
    "problem": {
        "name": "telco-like",
        "question": "Which accounts leave?",
        "target": "Left?",
        "positive_label": "Yes",
        "id_column": "AcctNo",
        "time_column": None,
        "post_outcome_columns": [],
        "baseline": {"rule": {"column": "Tenure Mo", "higher_is_positive": False}},
    },
}
