"""Where a stage's heavy work runs: in its own process, or spread over a Dask cluster.

``compute.engine: local`` (the default) runs everything in the stage's process.
``compute.engine: dask`` opens a client for the stage's duration: to the scheduler at
``compute.address`` or, when that is null, to a local cluster of ``compute.n_workers``
processes started here. The DVC stage stays the unit of work; inside it

- row-wise data work runs per partition (:meth:`Engine.partitions`, dask.dataframe);
- independent work (candidate x fold fits, tuning trials) runs as parallel tasks
  (:meth:`Engine.map`);
- XGBoost trains with ``xgboost.dask`` (``tasks.train``).

Data reaches the workers as Parquet partitions written to ``compute.shared_dir`` (a folder
or an fsspec URL such as ``s3://bucket/prefix``, which every worker must be able to read);
with a local cluster and no ``shared_dir`` it is a scratch folder in the project. The
partitions are deleted when the stage ends.

Code reaches a remote cluster's workers from the client (:func:`ship_code`): the stage zips
the ``tasks`` package it runs and installs it on every worker, and on workers that join
later, so the workers need the project's dependencies (``requirements.lock``) but no
checkout, and always run the stage's own revision of the code.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import types
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.config import ComputeParams
from tasks.core.errors import StepError

log = logging.getLogger("churn.compute")

CONNECT_TIMEOUT = "20s"
"""How long to keep trying to reach ``compute.address``."""

SCRATCH = ".dask-scratch"
"""The project folder that holds a local cluster's partitions while a stage runs."""


class Engine:
    """Runs independent work and per-partition work, locally or on a Dask client."""

    def __init__(self, cfg: ComputeParams, client: Any = None, scratch: str | None = None) -> None:
        self.cfg = cfg
        self.client = client
        self.scratch = scratch

    @property
    def is_dask(self) -> bool:
        """True when work goes to a Dask cluster."""
        return self.client is not None

    def map(self, fn: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]:
        """``[fn(item, **shared) for item in items]``, in order; on Dask, one task per item.

        ``fn`` must be a module-level function (workers import it). Each ``shared`` value is
        sent to the workers once, not once per item.
        """
        if not self.is_dask:
            return [fn(item, **shared) for item in items]
        sent = {k: self.client.scatter(v, broadcast=True) for k, v in shared.items()}
        futures = self.client.map(fn, list(items), pure=False, **sent)
        return self.client.gather(futures)

    def partitions(self, frame: pd.DataFrame, name: str) -> Any:
        """``frame`` as a dask DataFrame read by the workers from shared storage.

        The frame is cut into partitions of at most ``compute.partition_rows`` rows, and at
        least one per worker so every worker takes part, and written as Parquet under the
        shared folder; the workers read them from there.
        """
        import dask
        import dask.dataframe as dd

        if not self.is_dask:
            raise RuntimeError("partitions() needs the dask engine")
        folder = f"{self.scratch.rstrip('/')}/{name}"
        rows = self.cfg.partition_rows
        workers = len(self.client.scheduler_info()["workers"])
        parts = max(1, min(len(frame), max(workers, -(-len(frame) // rows))))
        dd.from_pandas(frame, npartitions=parts, sort=False).to_parquet(
            folder,
            write_index=True,
            storage_options=storage_options(folder),
            compute_kwargs={"scheduler": "sync"},
        )
        with dask.config.set({"dataframe.convert-string": False}):  # keep pandas' own dtypes
            return dd.read_parquet(folder, storage_options=storage_options(folder))

    def partitions_from(self, frames: Iterable[pd.DataFrame], name: str) -> Any:
        """Frames, one partition each, as a dask DataFrame read by the workers from shared
        storage (like :meth:`partitions`). Each frame is written as it comes, so a table read
        one part at a time is never whole in this process."""
        import dask
        import dask.dataframe as dd

        if not self.is_dask:
            raise RuntimeError("partitions_from() needs the dask engine")
        folder = f"{self.scratch.rstrip('/')}/{name}"
        options = storage_options(folder)
        if "://" not in folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
        for k, frame in enumerate(frames):
            frame.to_parquet(f"{folder}/part.{k:05d}.parquet", storage_options=options or None)
        with dask.config.set({"dataframe.convert-string": False}):
            return dd.read_parquet(folder, storage_options=options)

    def map_partitions(
        self, fn: Callable[..., Any], frame: pd.DataFrame, name: str, **kwargs: Any
    ) -> list[Any]:
        """``fn(partition, **kwargs)`` on each partition of ``frame``, on the workers, in order."""
        if not self.is_dask:
            return [fn(frame, **kwargs)]
        import dask

        parts = self.partitions(frame, name).to_delayed()
        call = dask.delayed(fn, pure=False)
        return list(self.client.compute([call(p, **kwargs) for p in parts], sync=True))


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for ``url``: an S3 endpoint from ``AWS_ENDPOINT_URL`` (MinIO and the like)."""
    if url.startswith("s3://") and os.environ.get("AWS_ENDPOINT_URL"):
        return {"client_kwargs": {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}}
    return {}


def _remove(url: str) -> None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **storage_options(url))
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path, recursive=True)


CODE = Path(__file__).resolve().parents[2]
"""The ``tasks`` package this process runs: what :func:`ship_code` sends to the workers."""

CODE_PLUGIN = "churn-code"
"""The name of the worker plugin that holds the shipped code (one per cluster: a new upload
replaces the last)."""


def _code_files(package: Path) -> list[Path]:
    return sorted(
        p
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


def code_archive(package: Path, into: Path) -> Path:
    """``package`` zipped as ``churn-code-<hash>.zip`` in ``into``; the hash is of its files."""
    files = _code_files(package)
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(package.parent).as_posix().encode() + b"\0")
        digest.update(f.read_bytes())
    archive = into / f"churn-code-{digest.hexdigest()[:16]}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            z.write(f, f.relative_to(package.parent).as_posix())
    return archive


def _use_code(
    archive_name: str, package: str, dask_worker: Any = None, dask_scheduler: Any = None
) -> str:
    """On a worker or the scheduler: import ``package`` from the shipped archive only.

    The upload puts the archive on ``sys.path``; this puts it first, drops earlier uploads
    from the path and the modules they loaded, so the next task imports this version.
    Returns where ``package`` now comes from. (Sent by value: see :func:`ship_code`.)
    """
    import importlib
    import sys

    server = dask_worker if dask_worker is not None else dask_scheduler
    path = os.path.join(server.local_directory, archive_name)
    sys.path[:] = [path] + [
        p for p in sys.path if p != path and not os.path.basename(p).startswith("churn-code-")
    ]
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        if not (getattr(sys.modules[name], "__file__", None) or "").startswith(path):
            del sys.modules[name]
    importlib.invalidate_caches()
    return importlib.import_module(package).__file__ or ""


def ship_code(client: Any, package: Path = CODE) -> str:
    """Install ``package`` (the running ``tasks``) on the scheduler and every worker.

    The scheduler reads the task graphs (it unpickles our functions) and the workers run
    them. Plugins carry the archive, so workers that join later get it too; a new upload
    replaces the last. Returns the archive's name. Raises StepError when the scheduler or a
    worker does not then import the package from it.
    """
    from distributed.diagnostics.plugin import SchedulerUploadFile, UploadFile

    with tempfile.TemporaryDirectory() as tmp:
        archive = code_archive(package, Path(tmp))
        if client.run_on_scheduler(_by_value(_has_plugin), CODE_PLUGIN):
            client.unregister_scheduler_plugin(CODE_PLUGIN)
        client.register_plugin(SchedulerUploadFile(str(archive), load=True), name=CODE_PLUGIN)
        client.register_plugin(UploadFile(str(archive), load=True), name=CODE_PLUGIN)
    use = _by_value(_use_code)
    where = client.run(use, archive.name, package.name)
    where["scheduler"] = client.run_on_scheduler(use, archive.name, package.name)
    wrong = {w: f for w, f in where.items() if archive.name not in f}
    if wrong:
        raise StepError(
            "compute",
            "dask cluster",
            f"{sorted(wrong)} did not load the shipped code {archive.name} ({wrong}); "
            "restart them (`dask scheduler`, `dask worker <scheduler address>`)",
        )
    log.info("code %s shipped to the scheduler and %d workers", archive.name, len(where) - 1)
    return archive.name


def _has_plugin(name: str, dask_scheduler: Any = None) -> bool:
    return name in dask_scheduler.plugins


def _by_value(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A copy of ``fn`` that belongs to no module, so it is pickled by value: the cluster runs
    it before it can import anything of ours. ``fn`` may use only builtins and ``os``."""
    copy = types.FunctionType(fn.__code__, {"__builtins__": __builtins__, "os": os}, fn.__name__)
    copy.__defaults__ = fn.__defaults__
    copy.__module__ = "__main__"
    return copy


def _connect(cfg: ComputeParams) -> tuple[Any, Any]:
    from distributed import Client, LocalCluster

    if cfg.address:
        try:
            return Client(cfg.address, timeout=CONNECT_TIMEOUT), None
        except OSError as exc:
            raise StepError(
                "compute",
                "dask scheduler",
                f"could not reach the Dask scheduler at {cfg.address} ({exc}); start it "
                "(`dask scheduler`, or the dask-scheduler service of docker-compose.yml) or "
                "set compute.address to null for a local cluster",
            ) from None
    cluster = LocalCluster(
        n_workers=cfg.n_workers,
        threads_per_worker=cfg.threads_per_worker,
        memory_limit=cfg.memory_limit,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.WARNING,
    )
    return Client(cluster), cluster


@contextlib.contextmanager
def engine(cfg: ComputeParams, root: Path, step: str) -> Iterator[Engine]:
    """The stage's :class:`Engine`; a Dask client (and local cluster) live as long as the block."""
    if cfg.engine == "local":
        yield Engine(cfg)
        return
    client, cluster = _connect(cfg)
    if cluster is None:  # a remote cluster: its workers get this stage's code
        try:
            ship_code(client)
        except BaseException:
            client.close()
            raise
    base = cfg.shared_dir or str(root / SCRATCH)
    scratch = f"{base.rstrip('/')}/{step}-{uuid.uuid4().hex[:8]}"
    where = cfg.address or f"a local cluster of {cfg.n_workers} workers"
    log.info(
        "[%s] dask engine: %s, %d threads; partitions in %s",
        step,
        where,
        sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()),
        scratch,
    )
    try:
        yield Engine(cfg, client, scratch)
    finally:
        _remove(scratch)
        client.close()
        if cluster is not None:
            cluster.close()
