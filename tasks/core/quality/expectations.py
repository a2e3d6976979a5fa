"""Custom Great Expectations for the leakage audit, over a derived audit frame.

Great Expectations has no built-in check across splits or of single-feature predictive
power, so the split step builds an audit frame (one row per id, per row content, per
feature and per split; a check's column is empty on the rows it does not concern) and
these expectations check its columns. Importing this module registers them; the suite
loader (:mod:`tasks.core.quality.validation`) always imports it and refuses a suite that loses
an expectation on load.
"""

from __future__ import annotations

from typing import Union

from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)


class ColumnValuesInOneSplit(ColumnMapMetricProvider):
    """Condition: a count of splits is at most 1."""

    condition_metric_name = "column_values.in_one_split"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):  # noqa: N805 - GX's signature
        return column <= 1


class ColumnValuesSingleFeatureAucBelow(ColumnMapMetricProvider):
    """Condition: a single-feature ROC-AUC (folded to >= 0.5) is below ``max_auc``."""

    condition_metric_name = "column_values.single_feature_auc_below"
    condition_value_keys = ("max_auc",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, max_auc, **kwargs):  # noqa: N805
        return column < max_auc


class ColumnValuesTimeOrdered(ColumnMapMetricProvider):
    """Condition: a split starts no earlier than the previous split ends (flag is 1)."""

    condition_metric_name = "column_values.time_ordered"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):  # noqa: N805
        return column >= 1


class ExpectIdsInOneSplit(ColumnMapExpectation):
    """Every id (in column ``n_splits`` of the id audit rows) belongs to one split only."""

    map_metric = "column_values.in_one_split"
    success_keys = ("mostly",)


class ColumnValuesNotPositive(ColumnMapMetricProvider):
    """Condition: an excess over a limit is at most 0."""

    condition_metric_name = "column_values.not_positive"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):  # noqa: N805
        return column <= 0


class ExpectHeldOutCopiesWithinChance(ColumnMapExpectation):
    """Held-out rows copy training rows no more often than chance gives on the same data.

    The column holds the held-out share of copies minus its limit
    (:mod:`tasks.core.quality.leakage`): at most 0 passes.
    """

    map_metric = "column_values.not_positive"
    success_keys = ("mostly",)


class ExpectSingleFeatureAucBelow(ColumnMapExpectation):
    """No single feature alone predicts the label suspiciously well."""

    max_auc: Union[float, SuiteParameterDict]  # noqa: UP007 - GX's pydantic v1 models
    map_metric = "column_values.single_feature_auc_below"
    success_keys = ("max_auc", "mostly")


class ExpectSplitsInTimeOrder(ColumnMapExpectation):
    """For a time split: validation starts after training ends, test after validation."""

    map_metric = "column_values.time_ordered"
    success_keys = ("mostly",)


CUSTOM = (
    ExpectIdsInOneSplit,
    ExpectHeldOutCopiesWithinChance,
    ExpectSingleFeatureAucBelow,
    ExpectSplitsInTimeOrder,
)
