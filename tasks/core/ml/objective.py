"""The objective: everything that depends on the problem type, behind one interface.

Steps, serving and monitoring ask the problem's objective (:func:`objective_for`) and
never slice a class index or name a metric themselves. What an objective answers is the
interface, :class:`~tasks.core.ml.objectives.base.Objective`; each type is a module of
:mod:`tasks.core.ml.objectives`, registered in :data:`OBJECTIVES` under its ``problem.type``:

- binary (:mod:`~tasks.core.ml.objectives.binary`): the positive class's probability, cut at
  the threshold of least expected cost under ``evaluate.cost``;
- regression (:mod:`~tasks.core.ml.objectives.regression`): the number itself, judged by
  its error;
- multiclass (:mod:`~tasks.core.ml.objectives.multiclass`): its classes are the training
  split's sorted labels, bound with :meth:`Objective.for_labels` (or given to
  :func:`objective_for` from the model's record); ``scores`` is the whole ``predict_proba``
  matrix (one column per class); ``decide`` is the arg-max, or the least expected cost under
  ``evaluate.cost_matrix``; the baseline is the class prior; ``link`` is the soft-max.

Binary and multiclass share the classifiers (:mod:`~tasks.core.ml.objectives.classifier`).
A new type is a module there, a line in :data:`OBJECTIVES`, its metrics in
:mod:`tasks.core.metrics` and its kinds in ``config.MODEL_KINDS``.

Tables keyed by the type, beside their code: the figures and ``dvc plots`` files
(:data:`tasks.core.ml.report.PLOTS`, ``PLOT_FILES``) and the leakage audit's single-feature
check (:data:`tasks.core.quality.leakage.SINGLE_FEATURE`). The performance estimate before
labels is a module of each type in :mod:`tasks.monitor` (binary: CBPE,
:mod:`tasks.monitor.estimate`; regression: direct loss estimation,
:mod:`tasks.monitor.loss_estimate`; multiclass: :mod:`tasks.monitor.class_estimate`),
chosen by the monitoring flow.
"""

from __future__ import annotations

from tasks.core.config import ProblemParams
from tasks.core.ml.objectives.base import TRIALS_Y, Floor, Objective, SignalSpec, TargetError
from tasks.core.ml.objectives.binary import Binary
from tasks.core.ml.objectives.multiclass import Multiclass
from tasks.core.ml.objectives.regression import Regression

__all__ = [
    "OBJECTIVES",
    "TRIALS_Y",
    "Binary",
    "Floor",
    "Multiclass",
    "Objective",
    "Regression",
    "SignalSpec",
    "TargetError",
    "objective_for",
]

OBJECTIVES: dict[str, type[Objective]] = {
    "binary": Binary,
    "regression": Regression,
    "multiclass": Multiclass,
}
"""Each ``problem.type``'s objective."""


def objective_for(problem: ProblemParams | None, classes: list[str] | None = None) -> Objective:
    """The objective of ``problem``'s type (``problem.type``); a multiclass one with the
    ``classes`` recorded with its model (``models/model_meta.json``, the card), or bound
    later (:meth:`Objective.for_labels`).

    ``None``: a model built outside a project (a test, a benchmark) is binary, with the
    default KPI options."""
    if problem is None:
        return Binary(ProblemParams(target="label", positive_label=1))
    return OBJECTIVES[problem.type](problem, classes)
