"""The serving model, followed from the registry's champion alias and swapped atomically."""

from __future__ import annotations

import logging
import threading
import uuid

from scoring.scoring import LoadedModel
from tasks.core.io import write_text
from tasks.core.paths import REGISTRY_ALIASES, RELOAD_MARKER
from tasks.core.serving.registry import Registry

log = logging.getLogger("churn.service")


class Champion:
    """The serving model, swapped atomically when the registry's champion alias changes."""

    def __init__(self, registry: Registry, poll_s: float = 0.5) -> None:
        self.registry = registry
        self.current: LoadedModel | None = None
        # after a promotion, the previous champion scores every request in shadow (not served)
        self.shadow: LoadedModel | None = None
        self._alias_stamp: tuple[float, int] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.refresh()
        self._watcher = threading.Thread(
            target=self._watch, args=(poll_s,), name="champion-watch", daemon=True
        )
        self._watcher.start()

    def _stamp(self) -> tuple[tuple[float, int] | None, tuple[float, int] | None]:
        """The alias file's and the reload marker's (time, inode)."""
        out = []
        for name in (REGISTRY_ALIASES, RELOAD_MARKER):
            try:
                st = (self.registry.root / name).stat()
                out.append((st.st_mtime, st.st_ino))
            except FileNotFoundError:
                out.append(None)
        return out[0], out[1]

    def refresh(self, force: bool = False) -> bool:
        """Load the champion if the alias changed; True if a new model was swapped in.

        A new reload marker (``/admin/reload`` on any worker) forces the load here too.
        """
        with self._lock:
            stamp = self._stamp()
            if stamp == self._alias_stamp and not force:
                return False
            if self._alias_stamp is not None and stamp[1] != self._alias_stamp[1]:
                force = True  # another worker was asked to reload: every worker does
            version = self.registry.champion()
            if version is None:
                self._alias_stamp = stamp
                return False
            if (
                self.current is not None
                and self.current.version.version == version.version
                and not force
            ):
                self._alias_stamp = stamp
                return False
            loaded = LoadedModel.load(self.registry, version)  # hash-checked; raises on a bad file
            try:  # the first request after a swap is as fast as the others
                loaded.warm()
            except Exception:  # noqa: BLE001 - a failed warm-up is not a reason to keep the old
                log.exception("warming %s up failed; serving it cold", version.version)
            self.current = loaded  # one reference assignment: requests see the old or the new model
            self._alias_stamp = stamp
            log.info("serving model %s", version.version)
            self.shadow = self._load_shadow(version.version)
            return True

    def _load_shadow(self, serving: str) -> LoadedModel | None:
        previous = self.registry.alias("previous_champion")
        if previous is None or previous.version == serving:
            return None
        try:
            shadow = LoadedModel.load(self.registry, previous)
        except Exception:  # the shadow is optional: never let it stop serving
            log.exception(
                "could not load %s for shadow scoring; serving without a shadow", previous.version
            )
            return None
        log.info("scoring in shadow with the previous champion %s", previous.version)
        return shadow

    def _watch(self, poll_s: float) -> None:
        while not self._stop.wait(poll_s):
            try:
                self.refresh()
            except Exception:  # a bad new champion must not stop the one serving
                log.exception("could not load the new champion; the previous model keeps serving")
                with self._lock:  # tried (and said) again only when the alias changes again
                    self._alias_stamp = self._stamp()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()


def request_reload(registry: Registry) -> None:
    """Ask every API worker watching ``registry`` to reload its champion (``/admin/reload``)."""
    write_text(registry.root / RELOAD_MARKER, uuid.uuid4().hex + "\n")
