"""The multiclass objective: one of several classes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import EvaluateParams, FairnessLimits, FeasibilityParams, ProblemParams
from tasks.core.ml.objectives.base import Objective, TargetError
from tasks.core.ml.objectives.classifier import Classifier, classifiers


def _shares(y: np.ndarray) -> np.ndarray:
    counts = np.unique(np.asarray(y), return_counts=True)[1]
    return counts / counts.sum()


def prior_neg_log_loss(y: np.ndarray) -> float:
    """The class prior's negated log loss on labels ``y`` (minus their entropy)."""
    p = _shares(y)
    return float(np.sum(p * np.log(p)))


def prior_macro_f1(y: np.ndarray) -> float:
    """The macro-F1 of always answering the most frequent class of ``y``."""
    p = _shares(y)
    return float(2 * p.max() / (1 + p.max()) / len(p))


def prior_accuracy(y: np.ndarray) -> float:
    """The accuracy of always answering the most frequent class of ``y``."""
    return float(_shares(y).max())


RULE_PRIOR_ROWS = 10
"""A multiclass rule's group counts as this many rows of the class prior besides its own."""


def rule_groups(fit_on: pd.Series, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The group of each row of a rule's column, for the rows it is fitted on and for
    ``values``: the value itself (missing: its own group), or for numbers with more than ten
    values, which of five quantile ranges of ``fit_on`` it falls in."""
    numeric = pd.api.types.is_numeric_dtype(fit_on) and not pd.api.types.is_bool_dtype(fit_on)
    if numeric and fit_on.nunique() > 10:
        edges = np.unique(np.nanquantile(fit_on.to_numpy(float), [0.2, 0.4, 0.6, 0.8]))

        def cut(v: pd.Series) -> np.ndarray:
            x = pd.to_numeric(v, errors="coerce").to_numpy(float)
            return np.where(np.isnan(x), -1, np.searchsorted(edges, x, side="right"))

        return cut(fit_on), cut(values)

    def text(v: pd.Series) -> np.ndarray:
        return v.astype("string").fillna("<missing>").to_numpy(dtype=object)

    return text(fit_on), text(values)


class Multiclass(Classifier):
    """One of several classes: a probability per class (a score column each, in the order of
    :attr:`classes`, the training split's sorted labels recorded with the model); the
    decision is the most probable class."""

    type = "multiclass"

    SUMMARY = ("log_loss", "macro_f1", "accuracy", "roc_auc_ovr")
    """Scored for each baseline, each slice and each tuning trial."""

    FLOOR_METRIC = "roc_auc_ovr"
    """The metric a slice's floor (``evaluate.slice_roc_auc_floor``), the live drop and the
    shadow are judged on."""

    IMPORTANCE_SCORER = "roc_auc_ovr"

    ORACLE_COLUMN = "oracle_"
    """The prefix of the simulator's columns of each class's true probability."""

    STORED_VALUES = None

    XGBOOST = {"objective": "multi:softprob", "eval_metric": "mlogloss"}
    ESTIMATORS = classifiers(XGBOOST)

    QUICK_MODEL = {
        "max_iter": 100,
        "learning_rate": 0.05,
        "max_leaf_nodes": 8,
        "min_samples_leaf": 40,
    }
    """Slower and smaller trees than binary's: log loss needs honest probabilities (on the
    simulator's next move, 2,400 rows, the binary settings' log loss is worse than the class
    prior's, these 0.21 better)."""

    def signal_score(self) -> tuple[str, str, str, Any, float]:
        """The primary metric, against the class prior's on the same labels (log loss
        negated, as scikit-learn scores it: higher is better)."""
        name = self.primary.name
        if name == "log_loss":
            return "neg_log_loss", "negative log loss", "neg_log_loss", prior_neg_log_loss, -0.01
        if name == "macro_f1":
            return "macro_f1", "macro-F1", "f1_macro", prior_macro_f1, 0.99
        if name == "accuracy":
            return "accuracy", "accuracy", "accuracy", prior_accuracy, 0.99
        return "roc_auc_ovr", "ROC-AUC (one vs rest)", "roc_auc_ovr", 0.5, 0.99

    HAS_CLASSES = True

    COST_KEY = "evaluate.cost_matrix"

    MAX_CLASSES = 50
    """More distinct labels than this is a number or an identifier, not a class label."""

    def __init__(self, problem: ProblemParams, classes: list[str] | None = None) -> None:
        super().__init__(problem)
        self.classes = None if classes is None else tuple(str(c) for c in classes)

    def for_labels(self, y: pd.Series) -> Objective:
        return Multiclass(self.problem, sorted(pd.Series(y).dropna().astype(str).unique()))

    @property
    def known(self) -> tuple[str, ...]:
        """:attr:`classes`, which a step binds before it needs them."""
        if self.classes is None:
            raise RuntimeError("the multiclass objective's classes are not bound (for_labels)")
        return self.classes

    # -- the target
    def read_target(self, values: pd.Series) -> pd.Series:
        """The labels as text (``"2.0"`` read as ``"2"``, spaces trimmed), each alias of
        ``problem.class_aliases`` replaced by its class; a blank is unlabelled."""
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        aliases = self.problem.class_aliases
        names = []
        for u in uniques:
            text = str(u).strip()
            try:
                number = float(text)
                text = str(int(number)) if number.is_integer() else text
            except ValueError:
                pass
            names.append(aliases.get(text, text) if text else None)
        table = pd.array([*names, None], dtype="string")
        return pd.Series(table[codes], index=values.index)  # code -1 (missing) takes the last

    def check_target(self, values: pd.Series) -> pd.Series:
        cfg = self.problem
        y = self.read_target(values)
        labels = sorted(y.dropna().unique())
        if len(labels) < 3:
            raise TargetError(
                "several classes",
                f"'{cfg.target}' holds {len(labels)} class(es) ({labels[:10]}): set "
                "problem.type: binary and problem.positive_label for a yes/no outcome",
            )
        if len(labels) > self.MAX_CLASSES:
            raise TargetError(
                "several classes",
                f"'{cfg.target}' holds {len(labels)} distinct values ({labels[:10]}...): more "
                f"than {self.MAX_CLASSES} classes is a number or an identifier; set "
                "problem.type: regression for a number, or merge classes with "
                "problem.class_aliases",
            )
        return y

    def labels(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """Each label's class index; -1 for a label the model never saw (:meth:`unseen`).
        Numbers are indices already (the prediction log's labels, :meth:`label_value`)."""
        values = pd.Series(values)
        if pd.api.types.is_numeric_dtype(values):
            return values.to_numpy(dtype=int)
        index = {c: k for k, c in enumerate(self.known)}
        text = values.astype("string")
        return text.map(index).fillna(-1).to_numpy(dtype=int)

    def class_names(self) -> tuple[str, ...]:
        return self.known

    def unseen(self, values: pd.Series | np.ndarray) -> dict[str, int]:
        """The labels among ``values`` that are not a class of the model, with their rows."""
        text = pd.Series(values).dropna().astype(str)
        counts = text[~text.isin(self.known)].value_counts()
        return {str(k): int(v) for k, v in sorted(counts.items())}

    def per_class(self, y: np.ndarray, decision: np.ndarray) -> dict[str, dict[str, float]] | None:
        from sklearn.metrics import precision_recall_fscore_support

        k = range(len(self.known))
        p, r, f, n = precision_recall_fscore_support(y, decision, labels=list(k), zero_division=0)
        return {
            c: {
                "precision": round(float(p[i]), 6),
                "recall": round(float(r[i]), 6),
                "f1": round(float(f[i]), 6),
                "rows": int(n[i]),
            }
            for i, c in enumerate(self.known)
        }

    LOG_HOLDS_SCORES = False

    def score_columns(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        return {f"prediction_{c}": scores[:, k] for k, c in enumerate(self.known)}

    def window_scores(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[[f"prediction_{c}" for c in self.known]].to_numpy(dtype=float)

    def window_predictions(self, frame: pd.DataFrame) -> pd.Series:
        names = np.asarray(self.known, dtype=object)
        return pd.Series(names[frame["decision"].to_numpy(dtype=int)], index=frame.index)

    def reference_columns(self, scores: np.ndarray, threshold: Any) -> dict[str, np.ndarray]:
        names = np.asarray(self.known, dtype=object)
        return {
            "prediction": names[self.decide(scores, threshold)],
            **self.score_columns(scores),
        }

    def oracle(self, frame: pd.DataFrame) -> np.ndarray | None:
        columns = [f"{self.ORACLE_COLUMN}{c}" for c in self.known]
        if any(c not in frame for c in columns) or frame[columns].isna().any().any():
            return None
        return frame[columns].to_numpy()

    def label_error(self, value: Any) -> str | None:
        if isinstance(value, str) and value in self.known:
            return None
        return f"a label is one of the classes {list(self.known)}, not {value!r}"

    def label_value(self, value: Any) -> float:
        return float(self.known.index(value))

    def stored(self, y: pd.Series) -> pd.Series:
        return y.astype("string")

    def clean_facts(self, y: pd.Series) -> dict[str, float]:
        shares = y.value_counts(normalize=True)
        return {
            "classes": int(len(shares)),
            "rarest_class_share": round(float(shares.min()), 6) if len(shares) else float("nan"),
        }

    def target_facts(self, y: pd.Series) -> dict[str, Any]:
        counts = y.dropna().value_counts()
        return {"class_rows": {str(k): int(counts[k]) for k in sorted(counts.index)}}

    def describe_target(self) -> str:
        return "(one of several classes)"

    def describe_facts(self, facts: dict[str, Any]) -> str:
        rows = facts["class_rows"]
        total = sum(rows.values()) or 1
        return f"{len(rows)} classes: " + ", ".join(
            f"`{c}` {n / total:.1%}" for c, n in rows.items()
        )

    # -- feasibility
    def label_checks(self, y: pd.Series, cfg: FeasibilityParams) -> list[dict[str, Any]]:
        """Every class with at least ``feasibility.min_minority_rows`` labelled rows; the
        rarest is named, with the two ways out."""
        counts = y.dropna().value_counts()
        rare = counts[counts < cfg.min_minority_rows]
        rarest = str(counts.idxmin()) if len(counts) else "?"
        check: dict[str, Any] = {
            "check": f"rows of the rarest class ({rarest})",
            "value": int(counts.min()) if len(counts) else 0,
            "threshold": cfg.min_minority_rows,
            "passed": rare.empty,
            "rule": ">=",
        }
        if not rare.empty:
            named = ", ".join(f"'{c}' ({n} rows)" for c, n in rare.items())
            common = str(counts.idxmax())
            check["advice"] = (
                f"too few rows of {named}: merge a rare class into another with "
                f"problem.class_aliases (as in {{'{rare.index[0]}': '{common}'}}), or lower "
                "feasibility.min_minority_rows"
            )
        return [check]

    def feasibility_facts(self, y: pd.Series) -> dict[str, float]:
        shares = y.dropna().value_counts(normalize=True)
        return {"classes": float(len(shares)), "rarest_class_share": float(shares.min())}

    def target_risks(self, facts: dict[str, float]) -> list[str]:
        share = facts["rarest_class_share"]
        if share < 0.05:
            return [f"a rare class ({share:.1%} of the rows): watch its recall and macro-F1"]
        return []

    # -- the model
    def linear_terms(self, model: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """A multinomial model's weights (a row per class) and intercepts."""
        coef = getattr(model, "coef_", None)
        if coef is None or np.ndim(coef) != 2 or len(coef) != len(self.known):
            return None
        return np.asarray(coef, dtype=float), np.asarray(model.intercept_, dtype=float)

    def booster_params(self, config: dict[str, Any], random_state: int) -> dict[str, Any]:
        """With the number of classes, which the estimator learns from the labels it sees."""
        return {**super().booster_params(config, random_state), "num_class": len(self.known)}

    def scores(self, model: Any, X: Any) -> np.ndarray:
        """The probability of each class, a column each (:attr:`classes`' order)."""
        return np.asarray(model.predict_proba(X), dtype=float)

    def link(self, margin: np.ndarray) -> np.ndarray:
        """The soft-max of each row's margins."""
        z = np.asarray(margin, dtype=float)
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)

    def decide(self, scores: np.ndarray, threshold: Any) -> np.ndarray:
        """The index of the most probable class; with a cost table (``threshold``, true
        class by row), of the class whose expected cost is least."""
        scores = np.asarray(scores, dtype=float)
        if threshold is None:
            return np.argmax(scores, axis=-1)
        return np.argmin(scores @ np.asarray(threshold, dtype=float), axis=-1)

    def answer(self, score: Any, threshold: Any) -> dict[str, Any]:
        p = np.asarray(score, dtype=float)
        return {
            "label": self.known[int(self.decide(p, threshold))],
            "probabilities": {c: round(float(v), 6) for c, v in zip(self.known, p, strict=True)},
        }

    def output_columns(self, scores: np.ndarray, threshold: float | None) -> dict[str, np.ndarray]:
        names = np.asarray(self.known, dtype=object)
        return {
            "label": names[self.decide(scores, threshold)],
            **{f"probability_{c}": scores[:, k] for k, c in enumerate(self.known)},
        }

    def logged_decisions(self, scores: np.ndarray, threshold: float | None) -> np.ndarray:
        return self.decide(np.asarray(scores), threshold)

    def logged_scores(self, scores: Any) -> Any:
        return np.asarray(scores, dtype=float).max(axis=-1).tolist()

    def cost_table(self, cfg: EvaluateParams) -> list[list[float]] | None:
        """``evaluate.cost_matrix`` as a table in the classes' order (true class by row,
        predicted class by column); None when not set.

        Raises
        ------
        ValueError
            Naming the classes the matrix leaves out or does not know.
        """
        given = cfg.cost_matrix
        if given is None:
            return None
        wanted = set(self.known)
        rows_missing = sorted(wanted - set(given))
        cells_missing = sorted(
            {c for row in given.values() for c in wanted - set(row)} if given else wanted
        )
        unknown = sorted(
            (set(given) | {c for row in given.values() for c in row}) - wanted, key=str
        )
        if rows_missing or cells_missing or unknown:
            raise ValueError(
                "evaluate.cost_matrix needs a cost for every true class (a key) and every "
                f"predicted class (a key of each row) among {list(self.known)}"
                + (f"; true classes missing: {rows_missing}" if rows_missing else "")
                + (f"; predicted classes missing: {cells_missing}" if cells_missing else "")
                + (f"; not classes of the training split: {unknown}" if unknown else "")
            )
        return [[float(given[t][p]) for p in self.known] for t in self.known]

    def decision_rule(
        self, y_valid: np.ndarray, scores: np.ndarray, cfg: EvaluateParams
    ) -> tuple[list[list[float]] | None, float | None]:
        """``evaluate.cost_matrix`` in the classes' order (the decision: least expected
        cost), and its expected cost on validation; without it, the most probable class."""
        table = self.cost_table(cfg)
        if table is None:
            return None, None
        return table, self.expected_cost(y_valid, scores, table, cfg)

    def expected_cost(
        self, y: np.ndarray, scores: np.ndarray, threshold: Any, cfg: EvaluateParams
    ) -> float | None:
        if threshold is None:
            return None
        y, known = np.asarray(y), np.asarray(y) >= 0  # -1: a label the model never saw
        decided = self.decide(np.asarray(scores)[known], threshold)
        return float(np.mean(np.asarray(threshold)[y[known], decided]))

    def rule_fields(self, threshold: Any) -> dict[str, Any]:
        return {}  # the answer's label is the decision, whichever rule made it

    def describe_rule(self, threshold: Any) -> tuple[str, str] | None:
        if threshold is None:
            return "Decision", "the most probable class"
        return "Decision", "the class of least expected cost under evaluate.cost_matrix"

    def strata(self, y: np.ndarray) -> np.ndarray:
        """The class (a missing label is a stratum of its own)."""
        return pd.Series(y).astype("string").fillna("").to_numpy(dtype=object)

    def judgeable(self, y: np.ndarray) -> bool:
        """Two classes or more among ``y``."""
        return len(np.unique(y)) >= 2

    def baseline_scores(
        self, frame: pd.DataFrame, train: pd.DataFrame | None = None
    ) -> dict[str, np.ndarray]:
        """The class prior: each class's share of ``train``'s labelled rows (``frame``'s own
        when not given), the same for every row; and the rule: the class shares within each
        value of its column (numbers: within five quantile ranges), smoothed toward the
        prior (a value ``train`` lacks gets the prior)."""
        fit_on = frame if train is None else train
        y = self.labels(fit_on[self.problem.target])
        known = y >= 0
        k = len(self.known)
        counts = np.bincount(y[known], minlength=k).astype(float)
        prior = (counts + 1e-9) / (counts + 1e-9).sum()
        out = {"class_prior": np.tile(prior, (len(frame), 1))}
        rule = self.problem.baseline.rule
        if rule is not None and rule.column in frame and rule.column in fit_on:
            seen, new = rule_groups(fit_on[rule.column], frame[rule.column])
            table = pd.crosstab(seen[known], y[known]).reindex(columns=range(k), fill_value=0)
            smoothed = (table.to_numpy() + RULE_PRIOR_ROWS * prior) / (
                table.to_numpy().sum(axis=1, keepdims=True) + RULE_PRIOR_ROWS
            )
            shares = dict(zip(table.index, smoothed, strict=True))
            out[f"rule:{rule.column}"] = np.array([shares.get(g, prior) for g in new])
        return out

    # -- slices and fairness
    def slice_facts(self, y: np.ndarray) -> dict[str, float]:
        y = np.asarray(y)
        return {"classes": int(len(np.unique(y)))}

    GROUP_CLASS_ROWS = 50
    """A class's recall in a group is judged from this many of its rows in the group (fewer:
    too noisy to compare, left out of the gap: with 50 rows each, two groups' recalls of 0.5
    differ by 0.1 by chance alone about one time in three)."""

    def group_figures(self, y: np.ndarray, decision: np.ndarray) -> dict[str, float]:
        """Each class's recall in the group (nan for a class with too few rows in it)."""
        y, decision = np.asarray(y), np.asarray(decision)
        return {
            f"recall_{c}": float(np.mean(decision[y == k] == k))
            if (y == k).sum() >= self.GROUP_CLASS_ROWS
            else math.nan
            for k, c in enumerate(self.known)
        }

    def fairness_gaps(self, groups: list[dict[str, Any]]) -> dict[str, float]:
        """The largest gap in a class's recall between groups (classes every group has)."""
        gaps = {}
        for c in self.known:
            found = [g[f"recall_{c}"] for g in groups if not math.isnan(g[f"recall_{c}"])]
            if len(found) >= 2:
                gaps[c] = max(found) - min(found)
        worst = max(gaps, key=gaps.__getitem__) if gaps else None
        return {"recall_gap": gaps[worst] if worst else 0.0, "recall_gap_class": worst}

    def fairness_checks(
        self, judged: dict[str, Any], limits: FairnessLimits
    ) -> list[tuple[bool, str]]:
        f, lim = judged, limits
        return [
            (
                f["recall_gap"] <= lim.max_tpr_gap,
                f"{f['column']}: recall gap {f['recall_gap']:.4f} (class "
                f"{f['recall_gap_class']}) vs limit {lim.max_tpr_gap}",
            )
        ]
