"""The per-record scoring path: one raw JSON record to a probability, with no pandas on it.

What training fitted is compiled once, when a model is loaded, into plain Python tables:
each raw column's parser (the clean step's number and date parsing in the configured
formats, category normalisation and aliases, unit fixes), the row-wise features, the fitted
preprocessing (median imputation with missing indicators, scaling, one-hot encoding with
infrequent categories) and the model (a logistic regression's coefficients, or XGBoost's
``inplace_predict`` on one row). A random forest keeps scikit-learn's own ``predict_proba``
on the compiled row: the documented fallback (``make bench`` reports its speed).

The pandas path (:meth:`scoring.scoring.LoadedModel.score`) stays the definition.
Cells this path is not sure to read the same way (a number written in an unusual form, a
date no format matches) are handed to the definition's own parsers, one cell at a time, and
``tests/service/test_compiled_parity.py`` holds the two paths to the same decisions,
probabilities equal to 1e-9 and the same 422s on 100,000 simulator records and the real
datasets. (One corner is pandas' own: ``to_numeric`` reads a number of more than 15 digits
differently depending on the other cells of the batch, because its float parser is not
correctly rounded; this path reads such a cell as the pandas path reads a one-record request.)
"""

from __future__ import annotations

import datetime as dt
import json
import math
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from scoring.fields import (
    CONTROL,
    ID_MAX_CHARS,
    INT_LIMIT,
    LARGEST,
    MAX_FIELD_CHARS,
    NOT_IDS,
    id_problem,
    too_large,
    too_long,
    value_problem,
)
from tasks.core.config import CleanParams, ProblemParams
from tasks.core.data.features import feature_list
from tasks.core.data.schema import parse_dates, parse_numbers
from tasks.core.ml.models import is_xgboost
from tasks.core.ml.objective import objective_for


class Loaded(Protocol):
    """What compiling needs of a loaded model (:class:`scoring.scoring.LoadedModel`
    has it; this module does not import that one, which imports this)."""

    @property
    def version(self) -> Any: ...  # a registered version: ``.card``
    @property
    def model(self) -> Any: ...  # the fitted pipeline
    @property
    def problem(self) -> ProblemParams: ...
    @property
    def clean(self) -> CleanParams: ...
    @property
    def kinds(self) -> dict[str, str]: ...


NAN = float("nan")
# plain decimals of up to 15 digits read the same in Python and in pandas (whose parser is
# not correctly rounded, and drops digits, beyond that); any other form (exponents, other
# digits, longer numbers) goes to the definition's parser
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")
_DIGITS = 15
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})
_NAT = int(np.iinfo(np.int64).min)  # NaT, as datetime64 holds it
_EPOCH = dt.datetime(1970, 1, 1)
_MICROSECOND = dt.timedelta(microseconds=1)
_INT_RANGE = float(INT_LIMIT)


class CompileError(ValueError):
    """A fitted pipeline this module does not know how to compile."""


# ----------------------------------------------------------------------------- cells
def number_of(value: Any) -> float:
    """A numeric cell as the clean step reads it (NaN when blank or unparsable)."""
    if value is None:
        return NAN
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return NAN
        if "," in text:
            text = _THOUSANDS.sub("", text)
        if (
            _PLAIN_NUMBER.fullmatch(text)
            and len(text) - (text[0] in "+-") - ("." in text) <= _DIGITS
        ):
            return float(text)
    # anything unusual: the definition's parser, on this one cell
    return float(parse_numbers(pd.Series([value], dtype=object))[0].iloc[0])


def date_of(value: Any, formats: list[str]) -> dt.datetime | None:
    """A date cell as the clean step reads it (None when blank or matching no format)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.isascii():
            for fmt in formats:
                try:
                    parsed = dt.datetime.strptime(text, fmt)
                except ValueError:
                    continue
                if 1678 <= parsed.year <= 2261:  # inside pandas' nanosecond range
                    return parsed
                break
    parsed = parse_dates(pd.Series([value], dtype=object), formats)[0].iloc[0]
    return None if pd.isna(parsed) else parsed.to_pydatetime()


def category_of(value: Any, aliases: dict[str, str]) -> str | None:
    """A category cell normalised as the clean step does (None when blank)."""
    if value is None:
        return None
    text = _NON_ALNUM.sub("-", str(value).lower()).strip("-")
    if not text:
        return None
    return aliases.get(text, text)


def text_of(value: Any) -> str | None:
    """A free-text cell as the clean step keeps it (stripped; None stays missing)."""
    return None if value is None else str(value).strip()


_CACHE_SIZE = 65_536


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    """``value``, kept in ``cache`` under ``key`` (bounded: full, the cache starts over)."""
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return value


def _cached(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``parse`` remembering the texts it has read (dates and spellings repeat: one record's
    three dates cost 30 µs through ``strptime``, 1 µs from here). Bounded: full, it starts over."""
    seen: dict[Any, Any] = {}

    def read(value: Any) -> Any:
        if not isinstance(value, str):
            return parse(value)
        try:
            return seen[value]
        except KeyError:
            return _remember(seen, value, parse(value))

    return read


class _Refer(Exception):
    """A batch the column-wise reader leaves to the record-by-record path: a cell it refuses,
    or one it does not read itself (that path then finds the 422, or reads the cell)."""


class InputColumns(Sequence[dict[str, Any]]):
    """A batch's model inputs column by column: numbers as float64 arrays (NaN missing),
    categories as lists (None missing). Reads as the list of rows :meth:`CompiledModel.row`
    gives; the prediction log and the shadow model take the columns as they are."""

    def __init__(
        self, numeric: dict[str, np.ndarray], categorical: dict[str, list[Any]], n: int
    ) -> None:
        self.numeric, self.categorical, self.n = numeric, categorical, n

    def __len__(self) -> int:
        return self.n

    @classmethod
    def concat(cls, parts: list[InputColumns]) -> InputColumns:
        """The batches of ``parts`` (the same columns) one after another."""
        first = parts[0]
        numeric = {c: np.concatenate([p.numeric[c] for p in parts]) for c in first.numeric}
        categorical = {c: [v for p in parts for v in p.categorical[c]] for c in first.categorical}
        return cls(numeric, categorical, sum(p.n for p in parts))

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as :meth:`CompiledModel.row` builds it."""
        out: dict[str, Any] = {c: float(a[i]) for c, a in self.numeric.items()}
        for c, values in self.categorical.items():
            out[c] = values[i]
        return out

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self.row(k) for k in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.row(i % self.n)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self.row(i) for i in range(self.n))


def _check_ids(ids: Sequence[Any]) -> None:
    """Refers a batch with an id :func:`id_problem` might refuse (texts checked in C)."""
    if all(type(v) is str for v in ids):
        stripped = list(map(str.strip, ids))
        if (
            all(stripped)
            and max(map(len, ids)) <= ID_MAX_CHARS
            and NOT_IDS.isdisjoint(map(str.lower, stripped))
        ):
            return  # control characters: with every other text of the field
        raise _Refer
    if any(map(id_problem, ids)):
        raise _Refer


def _finite_numbers(values: Sequence[Any]) -> None:
    """Refers a non-finite number, or an integer of more than 19 digits, in any field."""
    numbers = [v for v in values if type(v) is int or type(v) is float]
    try:
        magnitude = np.abs(np.array(numbers, dtype=float))
    except OverflowError:
        raise _Refer from None
    if not (magnitude < _INT_RANGE).all():
        raise _Refer


# ----------------------------------------------------------------------------- the model
class CompiledModel:
    """One raw record to (probability, model inputs), with the fitted tables of a model."""

    def __init__(self, loaded: Loaded) -> None:
        card = loaded.version.card
        problem, clean = loaded.problem, loaded.clean
        self.objective = objective_for(problem, card.get("classes"))
        self.kinds = {c: k for c, k in loaded.kinds.items() if c != problem.target}
        self.date_formats = list(clean.date_formats)
        self.aliases = {c: dict(a) for c, a in (clean.category_aliases or {}).items()}
        self.unit_fixes = [
            (f.column, float(f.above), float(f.divide_by))
            for f in clean.unit_fixes
            if self.kinds.get(f.column) == "numeric"
        ]
        self.numeric = list(card["numeric_features"])
        self.categorical = list(card["categorical_features"])
        self.input_columns = self.numeric + self.categorical
        # the features the training code builds from these columns (decided by their kinds)
        empty = pd.DataFrame(
            {
                c: pd.Series(dtype="datetime64[ns]" if k == "datetime" else object)
                for c, k in self.kinds.items()
            }
        )
        feature_defs = feature_list(empty, problem)
        self.features = [(f.name, f.scalar) for f in feature_defs]
        # the batch reader computes them column-wise (each feature's vector form), and reads
        # only the columns the model and the features take
        self.feature_defs = feature_defs
        self.feature_inputs = {c for f in feature_defs for c in f.requires}
        self.needed = {c for c in self.input_columns if c in self.kinds} | self.feature_inputs
        self._text_numbers: dict[str, float] = {}
        self._micros: dict[str, dict[str, int]] = {c: {} for c in self.kinds}
        self.id_column = problem.id_column
        # two models with the same signature read a record into the same input row
        self.signature = json.dumps(
            [
                self.kinds,
                self.date_formats,
                self.aliases,
                self.unit_fixes,
                self.numeric,
                self.categorical,
                [name for name, _ in self.features],
                problem.id_column,
            ],
            sort_keys=True,
            default=str,
        )
        self._parsers: dict[str, Callable[[Any], Any]] = {}
        for column, kind in self.kinds.items():
            self._parsers[column] = self._parser(column, kind)
        self._compile_pipeline(loaded.model)

    def _parser(self, column: str, kind: str) -> Callable[[Any], Any]:
        if kind == "numeric":
            return number_of
        if kind == "datetime":
            formats = self.date_formats
            return _cached(lambda v: date_of(v, formats))
        if kind == "categorical":
            aliases = self.aliases.get(column, {})
            return _cached(lambda v: category_of(v, aliases))
        return text_of

    # -- preprocessing and model, from the fitted pipeline
    def _compile_pipeline(self, pipeline: Any) -> None:
        steps = getattr(pipeline, "named_steps", {})
        prep, model = steps.get("prep"), steps.get("model")
        if prep is None or model is None:
            raise CompileError("expected a Pipeline of 'prep' and 'model'")
        transformers = {name: (step, cols) for name, step, cols in prep.transformers_}
        num, num_cols = transformers.get("num", (None, []))
        cat, cat_cols = transformers.get("cat", (None, []))
        if list(num_cols) != self.numeric or list(cat_cols) != self.categorical:
            raise CompileError("the pipeline's columns differ from the model card's")
        width = 0
        # numeric block: median imputation (+ indicators of columns missing in training),
        # then scaling when the pipeline scales
        if self.numeric:
            imputer = num.named_steps["impute"]
            stats = np.asarray(imputer.statistics_, dtype=float)
            self.num_keep = [i for i, s in enumerate(stats) if not np.isnan(s)]
            self.num_fill = [float(stats[i]) for i in self.num_keep]
            self.num_fill_array = np.array(self.num_fill, dtype=float)
            indicator = getattr(imputer, "indicator_", None)
            self.num_flags = [] if indicator is None else [int(i) for i in indicator.features_]
            n = len(self.num_keep) + len(self.num_flags)
            scaler = num.named_steps.get("scale")
            self.num_mean = np.zeros(n) if scaler is None else np.asarray(scaler.mean_, float)
            self.num_scale = np.ones(n) if scaler is None else np.asarray(scaler.scale_, float)
            if scaler is not None and (scaler.mean_ is None or scaler.scale_ is None):
                raise CompileError("a scaler without both centring and scaling")
            width = n
        else:
            self.num_keep, self.num_fill, self.num_flags = [], [], []
            self.num_fill_array = np.zeros(0)
            self.num_mean, self.num_scale = np.zeros(0), np.ones(0)
        self.num_width = width
        # categorical block: constant imputation, then one-hot encoding (infrequent categories
        # last) of the narrow columns and, after them, the target encoding of the wide ones
        # (models stored before the target encoding have a bare one-hot step)
        self.cat_slots: list[tuple[dict[Any, int], int | None]] = [({}, None)] * len(
            self.categorical
        )
        self.cat_values: list[tuple[int, int, dict[Any, float], float]] = []
        self.cat_fill: Any = None  # data without categorical inputs (all numbers) has none
        if self.categorical:
            imputer = cat.named_steps["impute"]
            self.cat_fill = imputer.fill_value
            encode = cat.named_steps.get("encode")
            if encode is None:
                onehot, narrow, target, wide = cat.named_steps["onehot"], None, None, []
            else:
                onehot, narrow = encode.onehot_, encode.narrow_
                target, wide = encode.target_, encode.wide_
            if narrow is None:
                narrow = list(range(len(self.categorical)))
            if onehot is not None:
                width = self._compile_onehot(onehot, narrow, width)
            if target is not None:
                if getattr(target, "target_type_", "binary") not in ("binary", "continuous"):
                    raise CompileError("a target encoding of more than one output per column")
                for k, (j, categories, codes) in enumerate(
                    zip(wide, target.categories_, target.encodings_)
                ):
                    mapping = dict(zip(categories.tolist(), np.asarray(codes, float).tolist()))
                    self.cat_values.append((j, width + k, mapping, float(target.target_mean_)))
                width += len(wide)
        self.width = width
        self.kind = type(model).__name__
        terms = self.objective.linear_terms(model)
        if terms is not None:  # the margin, then the objective's link
            self.coef, self.intercept = terms
            self._predict = self._linear
        elif is_xgboost(model):
            booster = model.get_booster()
            booster.set_param({"nthread": 1})  # one row: threads cost more than they save
            self.booster = booster
            self.iteration_range = model._get_iteration_range(None)
            self.missing = model.missing
            self._predict = self._xgboost
        else:  # documented fallback: the fitted estimator itself, on the compiled row
            if hasattr(model, "n_jobs"):
                model.n_jobs = 1
            self.estimator = model
            self._predict = self._estimator
        if self.width != len(prep.get_feature_names_out()):
            raise CompileError("the compiled row's width differs from the pipeline's output")

    def _compile_onehot(self, onehot: Any, positions: list[int], width: int) -> int:
        """Slots of the one-hot encoded inputs at ``positions``; the block's end."""
        if getattr(onehot, "drop_idx_", None) is not None:
            raise CompileError("one-hot encoding with dropped categories")
        infrequent = getattr(onehot, "infrequent_categories_", None) or [None] * len(
            onehot.categories_
        )
        for j, categories, rare in zip(positions, onehot.categories_, infrequent):
            rare_set = set() if rare is None else set(rare.tolist())
            frequent = [c for c in categories.tolist() if c not in rare_set]
            slots = {c: width + k for k, c in enumerate(frequent)}
            other = width + len(frequent) if rare_set else None
            for c in rare_set:
                slots[c] = other
            self.cat_slots[j] = (slots, other)
            width += len(frequent) + (1 if rare_set else 0)
        return width

    # each predictor computes every row on its own, so a row's probability does not depend
    # on the other rows of its batch (a single record and a batch agree exactly)
    def _linear(self, Z: np.ndarray) -> np.ndarray:
        if self.coef.ndim == 2:  # a margin per class (multinomial)
            margins = (Z[:, None, :] * self.coef).sum(axis=2)  # row by row, as below
            return self.objective.link(margins + self.intercept)
        return self.objective.link((Z * self.coef).sum(axis=1) + self.intercept)

    def _xgboost(self, Z: np.ndarray) -> np.ndarray:
        out = self.booster.inplace_predict(
            Z,
            iteration_range=self.iteration_range,
            predict_type="value",
            missing=self.missing,
            validate_features=False,
        )
        return np.asarray(out, dtype=float)

    def _estimator(self, Z: np.ndarray) -> np.ndarray:
        return self.objective.scores(self.estimator, Z)

    # -- one record
    def check(self, record: Any) -> tuple[str, str] | None:
        """The first (field, reason) the model cannot use, as the pandas path reports it."""
        if not isinstance(record, dict):
            return "*", "a record must be a JSON object"
        if self.id_column is not None:
            reason = id_problem(record.get(self.id_column))
            if reason:
                return self.id_column, reason
        kinds, parsers = self.kinds, self._parsers
        for field, value in record.items():
            kind_of_value = type(value)
            if kind_of_value is str:  # the common cases first, without a call
                if len(value) > MAX_FIELD_CHARS:
                    return str(field), too_long(value)
                if CONTROL.search(value):
                    return str(field), "contains a control character"
                if not value.strip():
                    continue
            elif value is None:
                continue
            elif kind_of_value is not bool and kind_of_value is not int:
                reason = value_problem(value)
                if reason:
                    return str(field), reason
            elif kind_of_value is int and not -INT_LIMIT < value < INT_LIMIT:
                return str(field), value_problem(value) or ""
            kind = kinds.get(field)
            if kind == "numeric":
                if kind_of_value is bool:
                    return field, f"expected a number, got {value!r}"
                if kind_of_value is float or kind_of_value is int:
                    if abs(float(value)) > LARGEST:
                        return field, too_large(value)
                    continue
                number = number_of(value if kind_of_value is str else str(value))
                if math.isnan(number):
                    return field, f"expected a number, got {value!r}"
                if not math.isfinite(number):
                    return field, f"expected a finite number, got {value!r}"
                if abs(number) > LARGEST:
                    return field, too_large(value)
            elif kind == "datetime":
                if parsers[field](value if kind_of_value is str else str(value)) is None:
                    return field, f"expected a date in one of {self.date_formats}, got {value!r}"
        return None

    def row(self, record: dict[str, Any]) -> dict[str, Any]:
        """The model's input row for one checked record (NaN / None for missing)."""
        values: dict[str, Any] = {}
        for column, parse in self._parsers.items():
            values[column] = parse(record.get(column))
        for column, above, divide_by in self.unit_fixes:
            number = values[column]
            if number > above:
                values[column] = number / divide_by
        for name, compute in self.features:
            try:
                number = float(compute(values))
            except ZeroDivisionError:
                number = NAN
            values[name] = number if math.isfinite(number) else NAN
        out: dict[str, Any] = {}
        for column in self.numeric:
            value = values.get(column, NAN)
            out[column] = NAN if value is None else float(value)
        for column in self.categorical:
            out[column] = values.get(column)
        return out

    def matrix(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """The preprocessed rows the classifier takes (one per input row)."""
        n = len(rows)
        if isinstance(rows, InputColumns):
            numbers = [rows.numeric[c] for c in self.numeric]
            raw = np.column_stack(numbers) if numbers else np.zeros((n, 0))
            categories = [rows.categorical[c] for c in self.categorical]
        else:
            raw = np.array([[row[c] for c in self.numeric] for row in rows], dtype=float)
            categories = [[row[c] for row in rows] for c in self.categorical]
        Z = np.zeros((n, self.width))
        if self.num_width:
            missing = np.isnan(raw)
            keep = raw[:, self.num_keep]
            filled = np.where(missing[:, self.num_keep], self.num_fill_array, keep)
            flags = missing[:, self.num_flags].astype(float)
            Z[:, : self.num_width] = (np.hstack([filled, flags]) - self.num_mean) / self.num_scale
        fill = self.cat_fill
        everyone = np.arange(n)
        wide = {j for j, _, _, _ in self.cat_values}
        for j, at, mapping, unseen in self.cat_values:
            Z[:, at] = [mapping.get(fill if v is None else v, unseen) for v in categories[j]]
        for j, (values, (slots, other)) in enumerate(zip(categories, self.cat_slots)):
            if j in wide:
                continue
            if all(type(v) is str or v is None for v in values):  # a few distinct spellings
                known = {v: slots.get(fill if v is None else v, other) for v in set(values)}
                at = [known[v] for v in values]
            else:
                at = [slots.get(fill if v is None else v, other) for v in values]
            if None in at:
                hit = [i for i, slot in enumerate(at) if slot is not None]
                Z[hit, [at[i] for i in hit]] = 1.0
            else:
                Z[everyone, at] = 1.0
        return Z

    # -- a batch, a column at a time
    def read_batch(self, records: list[Any]) -> InputColumns | None:
        """The model inputs of a batch, read a column at a time: what :meth:`row` gives each
        record, when :meth:`check` accepts every record.

        None when a record may be refused, or holds a cell this reader leaves to
        :meth:`row` (a number or a flag in a date field, a non-finite or very large number,
        a time zone): the caller then goes record by record. The parity test holds this
        reader to the pandas path as it holds the record-by-record one.
        """
        try:
            return self._read_batch(records)
        except _Refer:
            return None

    def _read_batch(self, records: list[Any]) -> InputColumns:
        n = len(records)
        if not all(type(r) is dict for r in records):
            raise _Refer
        needed = self.needed
        present = list(set().union(*records))
        table: dict[str, Sequence[Any]] = {}
        try:  # the usual batch: every record has the same fields, turned into columns in C
            if len(present) > 1:
                table = dict(zip(present, zip(*map(operator.itemgetter(*present), records))))
            elif present:
                table = {present[0]: [r[present[0]] for r in records]}
        except KeyError:
            table = {f: [r.get(f) for r in records] for f in present}
        if self.id_column is not None:
            _check_ids(table.get(self.id_column, [None] * n))
        parsed: dict[str, Any] = {}
        for field in needed.union(present):
            values = table.get(field)
            if values is None:
                values = [None] * n
            types = set(map(type, values))
            if not types <= _PLAIN_TYPES:
                raise _Refer
            if str in types:
                texts = values if len(types) == 1 else [v for v in values if type(v) is str]
                joined = "".join(texts)
                if CONTROL.search(joined) or (
                    len(joined) > MAX_FIELD_CHARS and max(map(len, texts)) > MAX_FIELD_CHARS
                ):
                    raise _Refer
            kind = self.kinds.get(field)
            if kind == "numeric":
                parsed[field] = self._numbers(values, types)
                continue
            if int in types or float in types:
                _finite_numbers(values)
            if kind == "datetime":
                parsed[field] = self._dates(field, values, types)
            elif kind is not None and field in needed:
                parse = self._parsers[field]
                if types <= {str, type(None)}:  # a few distinct spellings, each read once
                    known = {v: parse(v) for v in set(values)}
                    parsed[field] = [known[v] for v in values]
                else:
                    parsed[field] = [parse(v) for v in values]
        for column, above, divide_by in self.unit_fixes:
            if column in parsed:
                number = parsed[column]
                parsed[column] = np.where(number > above, number / divide_by, number)
        if self.feature_defs:
            self._add_features(parsed, n)
        numeric: dict[str, np.ndarray] = {}
        for column in self.numeric:
            values = parsed.get(column)
            if values is None:
                values = np.full(n, NAN)
            elif not isinstance(values, np.ndarray) or values.dtype != np.float64:
                raise _Refer  # a number input of another kind: as row() reads it
            numeric[column] = values
        categorical: dict[str, list[Any]] = {}
        for column in self.categorical:
            values = parsed.get(column)
            if values is None:
                values = [None] * n
            elif not isinstance(values, list):
                raise _Refer
            categorical[column] = values
        return InputColumns(numeric, categorical, n)

    def _numbers(self, values: Sequence[Any], types: set[type]) -> np.ndarray:
        """A number field's cells as :func:`number_of` reads them (refers what check refuses)."""
        if bool in types:
            raise _Refer
        try:
            if str not in types:
                out = np.array(values, dtype=float)  # None -> NaN
                if float in types and int(np.isnan(out).sum()) != values.count(None):
                    raise _Refer  # a NaN sent as a number
            else:
                known = self._text_numbers
                cells: list[Any] = []
                for value in values:
                    if type(value) is str:
                        number = known.get(value)
                        cells.append(self._text_number(value) if number is None else number)
                    elif value is None:
                        cells.append(NAN)
                    elif value != value:
                        raise _Refer
                    else:
                        cells.append(value)
                out = np.array(cells, dtype=float)
        except (OverflowError, TypeError, ValueError):
            raise _Refer from None
        with np.errstate(invalid="ignore"):
            if (np.abs(out) >= _INT_RANGE).any():  # too large for a model, or for an integer
                raise _Refer
        return out

    def _text_number(self, value: str) -> float:
        if not value.strip():
            number = NAN
        else:
            number = number_of(value)
            if not math.isfinite(number) or abs(number) > LARGEST:
                raise _Refer
        return _remember(self._text_numbers, value, number)

    def _dates(self, field: str, values: Sequence[Any], types: set[type]) -> np.ndarray:
        """A date field's cells as microseconds since 1970 (NaT missing)."""
        if not types <= {str, type(None)}:
            raise _Refer  # numbers and flags in a date field: record by record
        known = self._micros[field]
        parse = self._parsers[field]
        cells: list[int] = []
        for value in values:
            if value is None:
                cells.append(_NAT)
                continue
            micros = known.get(value)
            if micros is None:
                when = parse(value) if value.strip() else None
                if when is None:
                    if value.strip():
                        raise _Refer  # no format reads it: a 422
                    micros = _NAT
                elif when.tzinfo is not None:
                    raise _Refer
                else:
                    micros = (when - _EPOCH) // _MICROSECOND
                _remember(known, value, micros)
            cells.append(micros)
        return np.array(cells, dtype=np.int64)

    def _add_features(self, parsed: dict[str, Any], n: int) -> None:
        """The engineered features, a column at a time (each feature's ``vector`` form)."""
        columns: dict[str, np.ndarray] = {}
        for column in self.feature_inputs:
            values = parsed.get(column)
            kind = self.kinds.get(column)
            if kind == "datetime":
                values = np.full(n, _NAT, dtype=np.int64) if values is None else values
                columns[column] = values.view("M8[us]")
            elif kind == "numeric":
                columns[column] = np.full(n, NAN) if values is None else values
            else:
                raise _Refer  # a feature of text: as row() computes it
        with np.errstate(all="ignore"):
            for feature in self.feature_defs:
                number = np.asarray(feature.vector(columns), dtype=float)
                parsed[feature.name] = np.where(np.isfinite(number), number, NAN)

    def first_problem(self, records: list[Any]) -> tuple[int, str, str] | None:
        """The (record, field, reason) the pandas path reports for a batch: a record that is
        not an object, or a bad id, as soon as its record is reached; else the first field
        problem in record order, then field order."""
        found = None
        for i, record in enumerate(records):
            problem = self.check(record)
            if problem is None:
                continue
            if problem[0] == "*" or (self.id_column is not None and problem[0] == self.id_column):
                return (i, *problem)
            if found is None:
                found = (i, *problem)
        return found

    def score_rows(self, rows: Sequence[dict[str, Any]]) -> list[float]:
        """Probabilities of input rows (or :class:`InputColumns`) that a model of the same
        :attr:`signature` built."""
        if not rows:
            return []
        return self._predict(self.matrix(rows)).tolist()

    def score_records(self, records: list[dict[str, Any]]) -> tuple[list[float], list[dict]]:
        """(probabilities, model inputs) of records that :meth:`check` accepted."""
        rows = [self.row(r) for r in records]
        return self.score_rows(rows), rows

    def score_one(self, record: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """(probability, model inputs) of one record that :meth:`check` accepted."""
        row = self.row(record)
        return self.score_rows([row])[0], row
