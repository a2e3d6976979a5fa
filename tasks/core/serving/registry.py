"""The model registry: every registered version with its card, and aliases naming the champion.

Layout (``registry/`` at the project root, outside git and DVC, shared by every run)::

    registry/versions/v0001/model.skops     the model (skops, trusted types only)
    registry/versions/v0001/card.json       metrics, data versions, params, code version,
                                            flow run, the model file's sha256
    registry/versions/v0001/schema.json     training schema: columns, types, category sets, ranges
    registry/versions/v0001/reference.parquet  a reference sample for drift checks
    registry/aliases.json                   {"champion": "v0003", "previous_champion": "v0002"}
    registry/history.jsonl                  every alias change, with its reason
    registry/index.jsonl                    each version's file hashes, written at registration

A version folder is written aside and renamed into place; ``aliases.json`` is replaced in
one atomic rename, so a reader sees the old champion or the new one, never a mix. A model
is loaded only after its files' hashes match the card and the index: a file swapped or
edited on disk is refused (a guard against accidents and stray edits, not a signature:
someone who can rewrite the index can rewrite the model).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.config import Params
from tasks.core.io import TMP_PREFIX, file_sha256, write_json, write_parquet, write_text
from tasks.core.ml.models import load_model
from tasks.core.paths import REGISTRY_ALIASES, REGISTRY_INDEX

VERSION_RE = re.compile(r"^v\d{4,}$")
INDEX = REGISTRY_INDEX
VERSION_FILES = ("model.skops", "card.json", "schema.json", "reference.parquet")


class RegistryError(RuntimeError):
    """A registry operation could not be done (unknown version, hash mismatch...)."""


@dataclass(frozen=True)
class ModelVersion:
    """One registered model."""

    version: str
    folder: Path
    card: dict[str, Any]

    @property
    def model_path(self) -> Path:
        """The stored model file."""
        return self.folder / "model.skops"

    def schema(self) -> dict[str, Any]:
        """The training schema."""
        return json.loads((self.folder / "schema.json").read_text())

    def reference(self) -> pd.DataFrame:
        """The reference sample for drift checks."""
        return pd.read_parquet(self.folder / "reference.parquet")


class Registry:
    """A file-based model registry (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ reading
    def versions(self) -> list[ModelVersion]:
        """Every registered version, oldest first."""
        folder = self.root / "versions"
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.iterdir()):
            if VERSION_RE.match(path.name) and (path / "card.json").is_file():
                out.append(
                    ModelVersion(path.name, path, json.loads((path / "card.json").read_text()))
                )
        return out

    def get(self, version: str) -> ModelVersion:
        """One version by name (``v0003``)."""
        folder = self.root / "versions" / version
        if not VERSION_RE.match(version) or not (folder / "card.json").is_file():
            known = ", ".join(v.version for v in self.versions()) or "none"
            raise RegistryError(
                f"no model version '{version}' in {self.root} (registered: {known})"
            )
        return ModelVersion(version, folder, json.loads((folder / "card.json").read_text()))

    def aliases(self) -> dict[str, str]:
        """Alias name to version."""
        path = self.root / REGISTRY_ALIASES
        return json.loads(path.read_text()) if path.is_file() else {}

    def alias(self, name: str) -> ModelVersion | None:
        """The version an alias names, if any."""
        version = self.aliases().get(name)
        return self.get(version) if version else None

    def champion(self) -> ModelVersion | None:
        """The serving model's version."""
        return self.alias("champion")

    def history(self) -> list[dict[str, Any]]:
        """Every alias change, oldest first."""
        path = self.root / "history.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def index(self) -> dict[str, dict[str, str]]:
        """Version to the sha256 of each of its files when it was registered (``index.jsonl``)."""
        path = self.root / INDEX
        if not path.is_file():
            return {}
        out = {}
        for line in path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                out[entry["version"]] = entry["files"]
        return out

    def verify(self, version: ModelVersion) -> None:
        """Refuse a version whose files changed since it was registered.

        Its model file must match the hash on its card, and each file (card, schema, reference,
        model) the hash recorded in ``index.jsonl`` at registration. A missing or empty index
        is refused too (deleting it must not turn the check off); ``make reindex`` rebuilds it
        from the versions whose model still matches its card.
        """
        actual = file_sha256(version.model_path)
        expected = version.card["model_sha256"]
        if actual != expected:
            raise RegistryError(
                f"{version.version}: model file sha256 {actual[:12]}... does not match its card "
                f"({expected[:12]}...); refusing to load a modified model"
            )
        index = self.index()
        if not index:
            raise RegistryError(
                f"{self.root / INDEX} is missing or empty, so {version.version}'s files cannot "
                "be checked; refusing to load it. If the registry is yours and its files were "
                "not edited, rebuild the index: make reindex"
            )
        if version.version not in index:
            raise RegistryError(
                f"{version.version} is not in {self.root / INDEX}: it was not added by "
                "registration (copied or edited in by hand?); refusing to load it"
            )
        for name, recorded in index[version.version].items():
            path = version.folder / name
            found = file_sha256(path) if path.is_file() else "missing"
            if found != recorded:
                raise RegistryError(
                    f"{version.version}: {name} changed since registration (sha256 {found[:12]}... "
                    f"vs {recorded[:12]}... in {INDEX}); refusing to load a modified version"
                )

    def load(self, version: ModelVersion) -> Any:
        """Load a version's model after checking its files (``verify``)."""
        self.verify(version)
        return load_model(version.model_path)

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def register(
        self,
        model_file: Path,
        card: dict[str, Any],
        schema: dict[str, Any],
        reference: pd.DataFrame,
    ) -> ModelVersion:
        """Add a new version (never replaces one); returns it."""
        with self._locked():
            folder = self.root / "versions"
            folder.mkdir(parents=True, exist_ok=True)
            numbers = [int(v.version[1:]) for v in self.versions()]
            version = f"v{(max(numbers) + 1 if numbers else 1):04d}"
            staging = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + version + ".", dir=folder))
            try:
                shutil.copyfile(model_file, staging / "model.skops")
                full = {
                    **card,
                    "version": version,
                    "model_sha256": file_sha256(staging / "model.skops"),
                    "registered_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                }
                write_json(staging / "schema.json", schema)
                write_parquet(staging / "reference.parquet", reference)
                write_json(staging / "card.json", full)
                os.chmod(staging, 0o755)
                files = {name: file_sha256(staging / name) for name in VERSION_FILES}
                os.rename(staging, folder / version)
                self._append(INDEX, {"version": version, "files": files})
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
            return ModelVersion(version, folder / version, full)

    def _switch(self, changes: dict[str, str], event: dict[str, Any]) -> None:
        aliases = {**self.aliases(), **changes}
        write_json(self.root / REGISTRY_ALIASES, aliases)  # one atomic rename
        record = {**event, "aliases": aliases, "at": dt.datetime.now(dt.timezone.utc).isoformat()}
        self._append("history.jsonl", record)

    def _append(self, name: str, record: dict[str, Any]) -> None:
        """One JSON line at the end of an append-only registry file, synced to disk."""
        with open(self.root / name, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def rebuild_index(self) -> tuple[list[str], list[str]]:
        """Write ``index.jsonl`` anew from the versions whose model file matches its card.

        Returns the versions indexed and those left out (a model that does not match its
        card: never indexed, so never loaded). The other files are recorded as they are now:
        run it only on a registry whose files you trust.
        """
        with self._locked():
            kept, left = [], []
            lines = []
            for version in self.versions():
                if file_sha256(version.model_path) != version.card.get("model_sha256"):
                    left.append(version.version)
                    continue
                files = {
                    name: file_sha256(version.folder / name)
                    for name in VERSION_FILES
                    if (version.folder / name).is_file()
                }
                lines.append(json.dumps({"version": version.version, "files": files}) + "\n")
                kept.append(version.version)
            write_text(self.root / INDEX, "".join(lines))
            return kept, left

    def promote(self, version: str, reason: str) -> None:
        """Make ``version`` the champion; the current one becomes ``previous_champion``.

        Refused (nothing changes) when the version's files changed since registration: the
        alias never names a version the API would refuse to load.
        """
        with self._locked():
            self.verify(self.get(version))
            current = self.aliases().get("champion")
            if current == version:
                return
            changes = {"champion": version}
            if current:
                changes["previous_champion"] = current
            self._switch(
                changes,
                {"action": "promote", "version": version, "from": current, "reason": reason},
            )

    def rollback(self, to: str | None = None, reason: str = "manual rollback") -> str:
        """Point the champion back at ``to`` (default: the previous champion); return it.

        Refused, like :meth:`promote`, when the target's files changed since registration.
        """
        with self._locked():
            aliases = self.aliases()
            current = aliases.get("champion")
            target = to or aliases.get("previous_champion")
            if not target:
                raise RegistryError(
                    "no previous champion to roll back to: name a version (make rollback TO=v0001)"
                )
            self.verify(self.get(target))
            if target == current:
                raise RegistryError(f"{target} is already the champion")
            changes = {"champion": target}
            if current:
                changes["previous_champion"] = current
            self._switch(
                changes,
                {"action": "rollback", "version": target, "from": current, "reason": reason},
            )
            return target


def registry_dir(root: Path, params: Params) -> Path:
    """The project's registry folder (``promote.registry_dir`` under ``root``)."""
    return Path(root) / params.promote.registry_dir


def open_registry(root: Path, params: Params) -> Registry:
    """The project's model registry."""
    return Registry(registry_dir(root, params))
