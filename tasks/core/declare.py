"""What a step reads from ``params.yaml``, declared once: in the signature of its ``main``.

A step names the sections it receives, its own whole and others narrowed to the keys it needs::

    def main(
        root: Path,
        cfg: TrainParams,
        problem: Annotated[ProblemParams, Keys("target", "kpis.target_precision")],
        evaluate: Annotated[EvaluateParams, Keys("cost")],
        compute: ComputeParams,
    ) -> None:

:func:`arguments` builds exactly those: a section typed bare is passed whole, one annotated with
:class:`Keys` is a copy holding only the listed keys (dotted for a key of a nested section).
Reading any other key of a narrowed section fails with :class:`UndeclaredKey`, naming the key
and the step, so a step cannot come to depend on a key without saying so. :func:`declared_keys`
gives the dotted keys a signature declares: ``dvc.yaml`` lists exactly these for the stage
(``tests/code/test_dvc_params.py``), so editing a key no stage declares reruns nothing.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.config import Params, Section, UndeclaredKey


@dataclass(frozen=True)
class Keys:
    """Narrow a section parameter to these keys (``"kpis.target_precision"`` for a nested one)."""

    names: tuple[str, ...]

    def __init__(self, *names: str) -> None:
        object.__setattr__(self, "names", names)


def _section_names() -> dict[type[Section], str]:
    return {
        field.annotation: name
        for name, field in Params.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, Section)
    }


SECTION_OF: dict[type[Section], str] = _section_names()


@dataclass(frozen=True)
class Declared:
    """One parameter of a step's entry: which section, and which of its keys (None: all)."""

    parameter: str
    section: str
    keys: tuple[str, ...] | None


def declarations(fn: Callable[..., Any]) -> list[Declared]:
    """The sections ``fn``'s signature asks for, in order (``root`` is not one)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    out = []
    for name in inspect.signature(fn).parameters:
        hint = hints.get(name)
        keys = None
        if typing.get_origin(hint) is typing.Annotated:
            hint, *extras = typing.get_args(hint)
            keys = next((e.names for e in extras if isinstance(e, Keys)), None)
        if hint is Path or hint is None:
            continue
        if hint not in SECTION_OF:
            raise TypeError(
                f"{fn.__module__}.{fn.__qualname__}: parameter '{name}' is not a section"
            )
        out.append(Declared(name, SECTION_OF[hint], keys))
    return out


def declared_keys(fn: Callable[..., Any]) -> list[str]:
    """The dotted params keys ``fn`` declares: a whole section's name, or each narrowed key."""
    out = []
    for d in declarations(fn):
        out += [d.section] if d.keys is None else [f"{d.section}.{k}" for k in d.keys]
    return out


def narrowed(section: Section, keys: tuple[str, ...], where: str, step: str) -> Section:
    """A copy of ``section`` holding only ``keys``; reading another key raises UndeclaredKey."""
    nested: dict[str, list[str]] = {}
    for key in keys:
        head, _, rest = key.partition(".")
        if head not in type(section).model_fields:
            raise UndeclaredKey(f"{step} declares {where}.{head}, which params.yaml has not got")
        nested.setdefault(head, []).extend([rest] if rest else [])
    copy = section.model_copy()
    values = copy.__dict__
    for name in type(section).model_fields:
        if name not in nested:
            del values[name]
        elif nested[name] and isinstance(values[name], Section):
            values[name] = narrowed(values[name], tuple(nested[name]), f"{where}.{name}", step)
    copy._declared = (where, step)
    return copy


def arguments(fn: Callable[..., Any], root: Path, params: Params, step: str) -> dict[str, Any]:
    """The keyword arguments for a step's entry ``fn(root, ...)``: what its signature declares."""
    out: dict[str, Any] = {"root": root}
    for d in declarations(fn):
        section = getattr(params, d.section)
        out[d.parameter] = section if d.keys is None else narrowed(section, d.keys, d.section, step)
    return out
