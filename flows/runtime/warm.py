"""A warm process for the pipeline's steps: the heavy imports paid once per flow run.

Each DVC stage runs ``python -m tasks.<step>`` in a fresh interpreter, which spends 1 to
5 s importing pandas, scikit-learn, SciPy and Great Expectations before it does any work
(most of a small run's time). While the training flow runs stages, it keeps one server
process that has imported those libraries (and no project code) and forks a child per
step: the child runs the step module exactly as ``python -m`` would, with the stage's
working directory, environment, arguments and standard streams.

How a stage reaches it, with ``dvc.yaml`` unchanged: the flow runs ``dvc repro`` with a
folder first on ``PATH`` holding a ``python`` shim. The shim forwards ``python -m
tasks.<step> ...`` to the server over a Unix socket in a private folder (mode 0700),
passing its standard streams, waits, and exits with the step's exit code. Anything else,
or a server that is not there or declines, and the shim ``exec``s the real interpreter.

The server declines a step whose environment differs from its own (a library reads some
variables once, at import) or whose working directory is not the flow's project. When the
shim dies (DVC was stopped), the server stops the step (SIGTERM, then SIGKILL). When the
flow ends or dies (the server's stdin closes), it takes no new step, lets running ones
finish, and exits; a run killed outright leaves it to the next run's orphan sweep
(steps share the server's process group). ``CHURN_WARM_STEPS=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ENV_SWITCH = "CHURN_WARM_STEPS"
SOCKET_NAME = "steps.sock"
FOLDER_PREFIX = "churn-warm-"
STOP_GRACE_S = 5.0
# what DVC sets for each command, and the shell between it and the step for itself (the
# shim's folder leads PATH); any other difference from the server's environment declines
PER_COMMAND_VARS = frozenset({"DVC_ROOT", "DVC_STAGE", "PATH", "_", "PWD", "OLDPWD", "SHLVL"})

# What the steps import that costs seconds; project code is never imported here.
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "scipy.stats",
    "sklearn.compose",
    "sklearn.ensemble",
    "sklearn.inspection",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "xgboost",
    "matplotlib",
    "matplotlib.figure",
    "great_expectations",
)

_active: dict[str, dict[str, str]] = {"env": {}}

SHIM = """#!{python} -S
# Written by flows/runtime/warm.py: forwards `python -m tasks.<step>` to a warm process.
import json, os, re, socket, sys

REAL, SOCKET = {python!r}, {socket!r}
args = sys.argv[1:]
if len(args) >= 2 and args[0] == "-m" and re.fullmatch(r"tasks(\\.\\w+)+", args[1]):
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        conn.connect(SOCKET)
        request = {{"argv": args, "cwd": os.getcwd(), "env": dict(os.environ)}}
        socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
        answer = conn.recv(200)
    except OSError:
        answer = b""
    taken = answer == b"ok"
    if answer.startswith(b"no:"):
        why = answer[3:].decode()
        print(f"warm step process declined ({{why}}): a fresh interpreter runs it", file=sys.stderr)
    if taken:
        reply = conn.recv(64)
        if reply.startswith(b"exit:"):
            os._exit(int(reply[5:]))
        print("the warm step process ended before the step did", file=sys.stderr)
        os._exit(1)
os.execv(REAL, [REAL, *args])
"""


def enabled() -> bool:
    """Whether flows use the warm process: on Linux, unless ``CHURN_WARM_STEPS=0``.

    Also not when the interpreter's path cannot be a ``#!`` line (a space, or longer than
    the kernel reads): the shim would not start, and every stage would fail.
    """
    switched_off = os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off")
    shebang_ok = not any(c.isspace() for c in sys.executable) and len(sys.executable) < 200
    # fork and SOCK_SEQPACKET: Linux
    return sys.platform == "linux" and shebang_ok and not switched_off


def active_env() -> dict[str, str]:
    """Environment additions that route this process's stage commands to the warm server."""
    return dict(_active["env"])


@contextlib.contextmanager
def warm_steps(root: Path, env: dict[str, str]) -> Iterator[None]:
    """Keep a warm step server for ``root`` while the block runs stages.

    ``env`` is the environment the stages get (``tool_env()``); the server is started
    with it, so a step it runs sees the same. Stage commands started inside the block
    with :func:`active_env` added reach it; it stops when the block ends.
    """
    if not enabled():
        yield
        return
    from flows.runtime.processes import track_child

    sweep(Path(tempfile.gettempdir()))
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))  # mode 0700: only this user
    sock = folder / SOCKET_NAME
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.runtime.warm", str(sock), str(root.resolve())],
        cwd=root,
        env=env,
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    track_child(proc.pid, "warm step server")
    for name in ("python", "python3"):
        shim = folder / name
        shim.write_text(SHIM.format(python=sys.executable, socket=str(sock)))
        shim.chmod(0o755)
    _active["env"] = {"PATH": f"{folder}{os.pathsep}{env.get('PATH', '')}"}
    try:
        yield
    finally:
        _active["env"] = {}
        assert proc.stdin is not None
        proc.stdin.close()  # take no new step; exit once running ones end
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        track_child(proc.pid, None)
        shutil.rmtree(folder, ignore_errors=True)


def sweep(tmp: Path, older_than_s: float = 3600.0) -> list[Path]:
    """Remove what servers killed outright left (SIGKILL runs no clean-up): folders with no
    socket, unchanged for an hour (a live server's folder holds its socket, or is seconds
    old while it imports)."""
    removed = []
    cutoff = time.time() - older_than_s
    for folder in tmp.glob(FOLDER_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if not (folder / SOCKET_NAME).exists() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder)
                removed.append(folder)
    return removed


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # the project's own packages were imported to start this module: children import
    # them fresh, from the files as they are now
    for name in [m for m in sys.modules if m == "tasks" or m.startswith("tasks.")]:
        if name != __name__:
            del sys.modules[name]


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become ``python -m <module> <args>`` and exit with its code."""
    import atexit
    import runpy
    import threading
    import traceback

    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        module, args = request["argv"][1], request["argv"][2:]
        sys.argv = [module, *args]
        sys.path[0] = request["cwd"]
        for name in [m for m in sys.modules if m == "tasks" or m.startswith("tasks.")]:
            del sys.modules[name]
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:  # as the interpreter does: None is 0, a message is 1
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
            if not isinstance(exc.code, int | None):
                print(exc.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - report it as the interpreter would
            traceback.print_exc()
            code = 1
        # what the interpreter does at exit: threading's exit hooks (they stop the worker
        # processes of concurrent.futures and joblib, which hold the stage's output open),
        # then atexit's
        threading._shutdown()
        atexit._run_exitfuncs()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


class _Server:
    """One process, one thread: a select loop over the socket, stdin and the steps' shims."""

    def __init__(self, sock_path: Path, root: Path) -> None:
        self.sock_path, self.root = sock_path, root
        self.own_env = dict(os.environ)
        _preload()
        # what the imports set (scikit-learn's KMP_* defaults), as a fresh step's imports do
        self.preset = {k: v for k, v in os.environ.items() if k not in self.own_env}
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(str(sock_path))
        self.listener.listen(16)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "parent")
        self.steps: dict[int, socket.socket] = {}  # child pid -> its shim's connection
        self.stop_at: dict[int, float] = {}  # child pid -> when SIGKILL follows SIGTERM
        self.accepting = True

    def run(self) -> None:
        """Serve until stdin closes and the running steps have ended."""
        try:
            while self.accepting or self.steps:
                for key, _ in self.sel.select(timeout=0.2):
                    if key.data == "accept":
                        conn, _ = self.listener.accept()
                        self.sel.register(conn, selectors.EVENT_READ, "request")
                    elif key.data == "parent":
                        self._parent_spoke()
                    elif key.data == "request":
                        self._request(key.fileobj)
                    else:
                        self._shim_spoke(key.fileobj, key.data[1])
                self._escalate()
                self._reap()
        finally:  # stopped (SIGTERM): the steps it runs stop too
            for pid in self.steps:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    def _parent_spoke(self) -> None:
        if os.read(sys.stdin.fileno(), 4096):
            return
        # the flow is done (or dead): no new step; running ones finish
        self.accepting = False
        self.sel.unregister(sys.stdin.fileno())
        self.sel.unregister(self.listener)
        self.listener.close()
        self.sock_path.unlink(missing_ok=True)

    def _close(self, conn: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn)
        conn.close()

    def _request(self, conn: socket.socket) -> None:
        try:
            msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
            request = json.loads(msg)
        except (OSError, ValueError):
            self._close(conn)
            return
        env = request.get("env", {})
        changed = sorted(
            k
            for k in self.own_env.keys() | env.keys()
            if k not in PER_COMMAND_VARS and self.own_env.get(k) != env.get(k)
        )
        why = (
            "not taking steps"
            if not self.accepting or len(fds) != 3
            else "another project"
            if Path(request.get("cwd", "")).resolve() != self.root
            else "environment differs: " + ",".join(changed)
            if changed
            else ""
        )
        if why:
            with contextlib.suppress(OSError):
                conn.send(b"no:" + why.encode()[:190])
            self._close(conn)
        else:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the step holds no socket of the server's
                for key in list(self.sel.get_map().values()):
                    if isinstance(key.fileobj, socket.socket):
                        key.fileobj.close()
                _run_child({**request, "env": {**self.preset, **env}}, fds)
            self.steps[pid] = conn
            self.sel.modify(conn, selectors.EVENT_READ, ("step", pid))
            conn.send(b"ok")
        for fd in fds:
            os.close(fd)

    def _shim_spoke(self, conn: socket.socket, pid: int) -> None:
        with contextlib.suppress(OSError):
            if conn.recv(16):
                return
        # the shim is gone: DVC was stopped, so is its step
        self.sel.unregister(conn)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        self.stop_at[pid] = time.monotonic() + STOP_GRACE_S

    def _escalate(self) -> None:
        for pid, at in list(self.stop_at.items()):
            if at < time.monotonic() and pid in self.steps:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                del self.stop_at[pid]

    def _reap(self) -> None:
        while self.steps:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.steps.pop(pid, None)
            self.stop_at.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.send(f"exit:{_exit_code(status)}".encode())
                self._close(conn)


def main(argv: list[str]) -> None:
    """``python -m flows.runtime.warm <socket> <project root>``, from :func:`warm_steps`."""
    sock_path = Path(argv[0])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        _Server(sock_path, Path(argv[1]).resolve()).run()
    finally:
        shutil.rmtree(sock_path.parent, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
