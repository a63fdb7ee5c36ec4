"""A warm start for the workflow's Python jobs: one process with the imports done forks each job.

Every Snakemake ``script:`` job is a new Python process that imports astropy, photutils and
this package again: about 1.5 s of a per-frame job's 2-3 s. With the job server (the
workflow's ``onstart`` starts it when ``job_server: true``, the default; it ends with the run),
each adapter's first statement, `delegate`, hands its script to the server, which forks a
child that has those imports already; the child runs the script with the job's standard
input, output and error, working directory, environment and arguments, and the job's own
process waits for the child's exit status and exits with it. A job killed by Snakemake takes
its child along (the server kills a child whose job went away).

Without a server (a cluster node, ``--use-conda``, ``job_server: false``, the server gone),
`delegate` returns at once and the script runs in its own process as before. The server
stops when the run ends or its Snakemake process is gone, and writes one line per job (script,
exit status, wall and CPU seconds, peak memory) to its usage table.

This module imports nothing heavy: the job's process pays only for Python and Snakemake's
script preamble.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = [
    "ENV_SOCKET",
    "PRELOAD",
    "delegate",
    "serve",
    "start_server",
    "stop_server",
]

#: Environment variable with the server's socket; jobs inherit it from Snakemake.
ENV_SOCKET = "AIFA_JOB_SERVER"
ENV_PROFILE = "AIFA_PROFILE"
#: Set in a forked job: its `delegate` returns (it is the job).
_ENV_CHILD = "AIFA_JOB_SERVER_CHILD"

#: Modules the server imports once, for all jobs (those the per-frame adapters need).
PRELOAD = (
    "numpy",
    "scipy.ndimage",
    "astropy.units",
    "astropy.io.fits",
    "astropy.table",
    "astropy.wcs",
    "astropy.nddata",
    "astropy.stats",
    "astropy.coordinates",
    "astropy.time",
    "photutils.aperture",
    "photutils.background",
    "photutils.centroids",
    "photutils.detection",
    "snakemake.script",
    "aifa_steps.calibration.calibrate",
    "aifa_steps.astrometry.frame",
    "aifa_steps.astrometry.target",
    "aifa_steps.photometry.frame",
    "aifa_steps.photometry.reference",
    "aifa_steps.core.failures",
    "aifa_steps.core.frames",
    "aifa_steps.core.runlog",
)

_HEADER = struct.Struct("!I")


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def delegate() -> None:
    """Run this job's script in the job server, if there is one; return if there is none.

    Call it first in a Snakemake ``script:``, before the heavy imports. With a server it does
    not return: the job's process exits with the status of the forked child that ran the
    script. In that child (and without a server) it returns and the script runs.
    """
    path = os.environ.get(ENV_SOCKET)
    if not path or os.environ.get(_ENV_CHILD) == "1":
        return
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(path)
    except OSError:
        return  # no server (another machine, gone): run here
    request = json.dumps(
        {
            "script": os.path.abspath(sys.argv[0]),
            "argv": sys.argv,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
        }
    ).encode()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        socket.send_fds(conn, [_HEADER.pack(len(request)) + request], [0, 1, 2])
        status = _read_exactly(conn, _HEADER.size)
    except OSError:
        status = b""
    finally:
        conn.close()
    if len(status) != _HEADER.size:
        # The server went away before the job ended: outputs are written atomically, so
        # running the script here is safe.
        print("job server gone: running the script in this process", file=sys.stderr)
        return
    os._exit(_HEADER.unpack(status)[0])


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the job, run its script, exit with its status."""
    _die_with_parent()
    for target, fd in zip((0, 1, 2), fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[_ENV_CHILD] = "1"
    sys.argv = list(request["argv"])
    code = 0
    try:
        _run_script(request["script"])
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # the job's error: as Python reports an uncaught one (its hook)
        sys.excepthook(*sys.exc_info())
        code = 1
    finally:
        import atexit
        import logging

        atexit._run_exitfuncs()  # what the job registered (e.g. its timing line)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _run_script(script: str) -> None:
    """Run a job's script as ``__main__``; profiled into ``$AIFA_PROFILE`` if that is set.

    ``AIFA_PROFILE=<folder>`` (a development aid) writes one cProfile file per job,
    ``<script>-<pid>.prof``, readable with ``python -m pstats``.
    """
    import runpy

    folder = os.environ.get(ENV_PROFILE)
    if not folder:
        runpy.run_path(script, run_name="__main__")
        return
    import cProfile

    profile = cProfile.Profile()
    try:
        profile.runcall(runpy.run_path, script, run_name="__main__")
    finally:
        os.makedirs(folder, exist_ok=True)
        name = Path(script).stem.split(".")[-1]  # Snakemake's tmpXXXX.<script>.py
        profile.dump_stats(os.path.join(folder, f"{name}-{os.getpid()}.prof"))


def _die_with_parent() -> None:
    """Linux: the child is killed when the server dies (its job then reruns the script)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Server:
    """The accept-fork-reap loop (`serve`)."""

    def __init__(self, path: str, usage: str | None) -> None:
        self.path = path
        self.usage = usage
        self.jobs: dict[int, tuple[socket.socket, str, float]] = {}
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        self.listener.bind(path)
        os.chmod(path, 0o600)
        self.listener.listen(128)

    def accept(self) -> None:
        conn, _ = self.listener.accept()
        try:
            message, fds, _, _ = socket.recv_fds(conn, 65536, 3)
            (size,) = _HEADER.unpack(message[: _HEADER.size])
            body = message[_HEADER.size :]
            body += _read_exactly(conn, size - len(body))
            request = json.loads(body)
        except (OSError, ValueError, struct.error):
            conn.close()
            return
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self.listener.close()
            for other, _, _ in self.jobs.values():
                other.close()
            conn.close()
            _run_child(request, fds)
        for fd in fds:
            os.close(fd)
        name = Path(request["script"]).name  # Snakemake's copy: tmpXXXXXXXX.<script>.py
        name = name.split(".", 1)[1] if name.startswith("tmp") and name.count(".") > 1 else name
        self.jobs[pid] = (conn, name, time.monotonic())

    def job_gone(self, conn: socket.socket) -> None:
        """A job's process closed its end before its child finished: stop the child."""
        for pid, (other, _, _) in self.jobs.items():
            if other is conn:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def reap(self) -> None:
        while self.jobs:
            try:
                pid, status, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn, script, start = self.jobs.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code  # killed by a signal: 128 + signal
            self.record(script, code, time.monotonic() - start, rusage)
            try:
                conn.sendall(_HEADER.pack(code))
            except OSError:
                pass
            conn.close()

    def record(self, script: str, code: int, wall: float, rusage: object) -> None:
        if not self.usage:
            return
        cpu = rusage.ru_utime + rusage.ru_stime  # type: ignore[attr-defined]
        peak = rusage.ru_maxrss / 1024.0  # type: ignore[attr-defined]
        new = not os.path.exists(self.usage)
        try:
            with open(self.usage, "a", encoding="utf-8") as out:
                if new:
                    out.write("script\tstatus\twall_s\tcpu_s\tmax_rss_mb\n")
                out.write(f"{script}\t{code}\t{wall:.3f}\t{cpu:.3f}\t{peak:.1f}\n")
        except OSError as exc:  # a full disk is the jobs' problem to report, not the server's
            print(f"job server: usage not recorded ({exc})", file=sys.stderr)

    def close(self) -> None:
        for pid, (conn, _, _) in list(self.jobs.items()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            conn.close()
        self.listener.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def serve(path: str, parent: int | None = None, usage: str | None = None, preload=PRELOAD) -> None:
    """Serve jobs on the UNIX socket ``path`` until SIGTERM or until ``parent`` is gone.

    Parameters
    ----------
    path : str
        Socket file (created; removed at the end).
    parent : int, optional
        Process to outlive not: the server ends when it is gone (Snakemake killed).
    usage : str, optional
        Tab-separated file to which a line per job is appended (script, status, wall and
        CPU seconds, peak memory in MB).
    preload : sequence of str
        Modules imported once before serving (`PRELOAD`); one that fails is skipped.
    """
    import importlib

    server = _Server(path, usage)  # listening first: early jobs wait in the backlog
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a missing optional module costs only its warm start
            print(f"job server: {name} not preloaded ({exc})", file=sys.stderr)
    try:
        while not stopping and (parent is None or _alive(parent)):
            waiting = [server.listener, *(conn for conn, _, _ in server.jobs.values())]
            try:
                readable, _, _ = select.select(waiting, [], [], 0.2)
            except InterruptedError:
                readable = []
            for ready in readable:
                if ready is server.listener:
                    server.accept()
                elif not ready.recv(1, socket.MSG_PEEK):
                    server.job_gone(ready)
            server.reap()
    finally:
        server.close()


def start_server(log: str | Path, usage: str | Path | None = None, parent: int | None = None):
    """Start a job server in the background for this process's jobs; return its socket path.

    The server's messages go to ``log``. The socket is in the temporary folder (a short path
    on the machine's own disk). Returns the `subprocess.Popen` and the socket path.
    """
    parent = os.getpid() if parent is None else parent
    path = os.path.join(tempfile.gettempdir(), f"aifa-jobs-{parent}-{time.time_ns() % 10**9}")
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "aifa_steps.core.jobserver", path, "--parent", str(parent)]
    if usage:
        Path(usage).parent.mkdir(parents=True, exist_ok=True)
        command += ["--usage", str(usage)]
    with open(log, "a", encoding="utf-8") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    deadline = time.monotonic() + 10.0
    while not os.path.exists(path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return process, path


def stop_server(process: subprocess.Popen | None) -> None:
    """Stop a server from `start_server` (it finishes nothing: the run has ended)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> None:
    """``python -m aifa_steps.core.jobserver SOCKET [--parent PID] [--usage FILE]``."""
    import argparse

    parser = argparse.ArgumentParser(description="Serve the workflow's Python jobs warm.")
    parser.add_argument("socket")
    parser.add_argument("--parent", type=int)
    parser.add_argument("--usage")
    args = parser.parse_args(argv)
    serve(args.socket, args.parent, args.usage)


if __name__ == "__main__":
    main()
