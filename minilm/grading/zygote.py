"""A warm start for the grader's checker (checker.py), one per grading worker.

A checker is a fresh Python process per notebook, and most of its work is starting: the test
cells import NumPy, Numba and the library (about 0.8 s of CPU for chapter 1's setup cell) and
Numba sets up LLVM at its first compile. The zygote does that once, when `minilm grade` starts
a worker (`start`), and then forks a checker per notebook: the child has all of it already.

    python -m minilm.grading.zygote FD

serves the Unix socket FD (a SOCK_SEQPACKET pair with the worker): each message `{"cwd": DIR}`
comes with two pipe ends, the checker's stdin and stdout; the zygote forks, answers `{"pid":
N}`, and the child serves `checker.main` on those pipes in DIR. The zygote ends when the worker's
end of the socket closes, and each child when the grader's end of its pipes does.
`fork_checker` is the grader's side: a `Forked` checker with the interface of the
`subprocess.Popen` it replaces, or None where no zygote runs (`minilm check` grades one notebook:
a zygote would not pay there).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

ANSWER_TIMEOUT = 60.0  # seconds the grader waits for the zygote to fork (it may still be warming)

_zygote: tuple[subprocess.Popen, socket.socket] | None = None  # this worker's, once `start` ran


# -- the zygote process ---------------------------------------------------------------------------

def warm() -> None:
    """Import what test cells import and compile once, before any fork."""
    import numba
    import numpy  # noqa: F401

    import minilm.bench  # noqa: F401
    import minilm.kbit  # noqa: F401
    import minilm.kernels  # noqa: F401

    from . import checker, notebook_tools, replay, shelf  # noqa: F401

    numba.njit(lambda x: x + 1)(1)  # LLVM's set-up, paid once


def serve(control: socket.socket) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the grader's to handle
    warm()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    while True:
        message, descriptors, _, _ = socket.recv_fds(control, 4096, 2)
        if not message:  # the worker has gone
            return
        if len(descriptors) != 2:
            for descriptor in descriptors:
                os.close(descriptor)
            control.send(b'{"pid": null}')
            continue
        pid = os.fork()
        if pid == 0:
            control.close()
            _child(json.loads(message), *descriptors)  # never returns
        for descriptor in descriptors:
            os.close(descriptor)
        control.send(json.dumps({"pid": pid}).encode())


def _child(request: dict, requests: int, replies: int) -> None:
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.dup2(requests, 0)
        os.dup2(replies, 1)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
        os.close(requests)
        os.close(replies)
        sys.stdin = open(0, encoding="utf-8", closefd=False)
        from .checker import main

        main()
        code = 0
    finally:
        os._exit(code)


# -- the grader's side ---------------------------------------------------------------------------

def start() -> None:
    """Start this process's zygote (a grading worker calls it as it starts)."""
    global _zygote
    if _zygote is not None and _zygote[0].poll() is None:
        return
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    process = subprocess.Popen(
        [sys.executable, "-m", "minilm.grading.zygote", str(theirs.fileno())],
        pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    theirs.close()
    ours.settimeout(ANSWER_TIMEOUT)
    _zygote = (process, ours)


class Forked:
    """A checker forked by the zygote: what `Checker` uses of a `subprocess.Popen`."""

    def __init__(self, pid: int, stdin, stdout):
        self.pid, self.stdin, self.stdout = pid, stdin, stdout

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for stream in (self.stdin, self.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def wait(self) -> None:
        """Until the process is gone (it is the zygote's child: the zygote reaps it)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.002)


def fork_checker(folder: str) -> Forked | None:
    """A new checker working in `folder`, forked by this process's zygote; None where none runs
    or it fails (the caller then starts a fresh Python)."""
    global _zygote
    if _zygote is None:
        return None
    process, control = _zygote
    requests_read, requests_write = os.pipe()
    replies_read, replies_write = os.pipe()
    try:
        socket.send_fds(control, [json.dumps({"cwd": folder}).encode()],
                        [requests_read, replies_write])
        pid = json.loads(control.recv(4096))["pid"]
        if not isinstance(pid, int):
            raise ValueError("the zygote did not fork")
    except (OSError, ValueError, KeyError, TypeError):
        process.kill()
        control.close()
        _zygote = None
        for descriptor in (requests_write, replies_read):
            os.close(descriptor)
        return None
    finally:
        os.close(requests_read)
        os.close(replies_write)
    return Forked(pid, open(requests_write, "w", encoding="utf-8"),
                  open(replies_read, encoding="utf-8"))


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
