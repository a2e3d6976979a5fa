"""The ``params.yaml`` reference page of the docs, generated from the typed config.

Every key comes from the pydantic models in ``tasks/core/config.py`` (type, allowed values,
bounds, default), with the section's docstring and the comment ``params.yaml`` gives the key.
``make docs`` writes ``docs/reference/params.md``; a test fails when the committed page is
not what this prints, or when a key of ``params.yaml`` is missing from it.

    python -m devtools.params_reference            # write docs/reference/params.md
    python -m devtools.params_reference --check    # exit 1 if the page is out of date
"""

from __future__ import annotations

import inspect
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from tasks.core.config import Params
from tasks.core.metrics import metrics_for

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "reference" / "params.md"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w-]*):(?P<rest>.*)$")


def _inline_comment(rest: str) -> tuple[str, int] | None:
    """The comment after a YAML value and the offset of its ``#`` in ``rest`` (a ``#``
    inside a quoted value is not one)."""
    start = len(rest) - len(rest.lstrip())
    if rest[start : start + 1] in ("'", '"'):
        close = rest.find(rest[start], start + 1)
        start = close + 1 if close > 0 else len(rest)
    at = rest.find("#", start)
    return (rest[at + 1 :].strip(), at) if at >= 0 else None


def yaml_comments(text: str) -> dict[str, str]:
    """{dotted key: its comment} from ``params.yaml``.

    A key's comment is the one on its line, with the comment-only lines below whose ``#`` is
    in the same column (a continuation), or else the comment-only lines just above it at its
    own indentation.
    """
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last: tuple[str, int] | None = None
    above: list[tuple[int, str]] = []
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("#"):
            column = len(line) - len(stripped)
            if last and column == last[1]:
                out[last[0]] += " " + stripped[1:].strip()
            else:
                last = None
                above.append((column, stripped[1:].strip()))
            continue
        last = None
        found = KEY.match(line)
        if not found:
            above = []
            continue
        indent = len(found["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, found["key"]))
        path = ".".join(k for _, k in stack)
        comment = _inline_comment(found["rest"])
        if comment:
            out[path] = comment[0]
            last = (path, len(line) - len(found["rest"]) + comment[1])
        elif above and all(column == indent for column, _ in above):
            out[path] = " ".join(text for _, text in above)
        above = []
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The section models of a field typed ``Model`` or ``Model | None``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
    else:
        args = (annotation,)
    return [a for a in args if inspect.isclass(a) and issubclass(a, BaseModel)]


FIELD = re.compile(r"^    (?P<name>[a-z_]\w*): [^=]+(=.*)?$")


def code_comments(path: Path) -> dict[tuple[str, str], str]:
    """{(class, field): the comment above the field, after it, or its docstring} from
    ``tasks/core/config.py``."""
    out: dict[tuple[str, str], str] = {}
    owner, pending = "", []
    lines = path.read_text().splitlines()
    for k, line in enumerate(lines):
        if line.startswith("class "):
            owner, pending = line[6:].split("(")[0].split(":")[0], []
            continue
        if line.startswith("    # "):
            pending.append(line.strip()[2:])
            continue
        found = FIELD.match(line)
        if owner and found:
            text = " ".join(pending)
            if "  # " in line:
                text = (text + " " + line.split("  # ", 1)[1]).strip()
            after = lines[k + 1].strip() if k + 1 < len(lines) else ""
            if after.startswith('"""'):
                doc = [after.strip('"')]
                j = k + 1
                while not lines[j].rstrip().endswith('"""') or (j == k + 1 and after == '"""'):
                    j += 1
                    doc.append(lines[j].strip().strip('"'))
                text = (text + " " + " ".join(d for d in doc if d)).strip()
            if text:
                out[(owner, found["name"])] = text
        pending = []
    return out


def type_name(annotation: Any) -> str:
    """A short, readable type: ``int``, ``float | null``, ``one of: a, b``, ``list[str]``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of: " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else type_name(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return "section"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def bounds(field: Any) -> str:
    """``>= 0, <= 1`` from the field's constraints."""
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    out = []
    for meta in field.metadata:
        for attr, sign in signs.items():
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(f"{sign} {value}")
    return ", ".join(out)


def default_of(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory else field.default
    if isinstance(value, BaseModel):
        return ""
    return json.dumps(value, default=str)


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any, type[BaseModel]]]:
    """(dotted key, field, owning model) of every field, sections depth first."""
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        out.append((key, field, model))
        for sub in _models_in(field.annotation):
            out += rows(sub, f"{key}.")
        origin = typing.get_origin(field.annotation)
        if origin is list:
            for sub in _models_in(typing.get_args(field.annotation)[0]):
                out += rows(sub, f"{key}[].")
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(params_yaml: Path = REPO / "params.yaml") -> str:
    """The reference page, as markdown."""
    text = params_yaml.read_text()
    comments = yaml_comments(text)
    in_code = code_comments(REPO / "tasks" / "core" / "config.py")
    shipped = yaml.safe_load(text)
    lines = [
        "# params.yaml reference",
        "",
        "<!-- generated by `python -m devtools.params_reference` (make docs) from the typed",
        "config in tasks/core/config.py; do not edit by hand -->",
        "",
        "Every key the workflow reads, by section: its type and bounds, the default in the "
        "code (used when `params.yaml` leaves the key out), the value the shipped "
        "`params.yaml` sets, and what it does. An unknown key is an error that names the "
        "closest known one.",
        "",
    ]
    for section, field in Params.model_fields.items():
        model = _models_in(field.annotation)[0]
        lines += [f"## `{section}`", "", inspect.cleandoc(model.__doc__ or ""), ""]
        lines += [
            "| key | type | default | params.yaml | what it does |",
            "|---|---|---|---|---|",
        ]
        for key, sub, owner in rows(model, f"{section}."):
            sections = _models_in(sub.annotation)
            limit, default, value = bounds(sub), default_of(sub), _lookup(shipped, key)
            doc = comments.get(key, "")
            extra = in_code.get((owner.__name__, key.rsplit(".", 1)[-1].removesuffix("[]")), "")
            if extra and extra not in doc:
                doc = f"{doc}; {extra}" if doc else extra
            if sections:
                doc = doc or inspect.cleandoc(sections[0].__doc__ or "")
            kind = type_name(sub.annotation)
            if key == "problem.primary_metric":  # the metric registry's names
                kind = "one of: " + ", ".join(metrics_for("binary"))
            cells = [
                f"`{key}`",
                kind + (f" ({limit})" if limit else ""),
                f"`{default}`" if default else "",
                "" if value is _MISSING or sections else f"`{json.dumps(value, default=str)}`",
                doc,
            ]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


_MISSING = object()


def _lookup(tree: Any, key: str) -> Any:
    node = tree
    for part in key.split("."):
        if part.endswith("[]") or not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def main(argv: list[str]) -> int:
    page = render()
    if "--check" in argv:
        if not PAGE.exists() or PAGE.read_text() != page:
            print(f"{PAGE.relative_to(REPO)} is out of date: run make docs", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
