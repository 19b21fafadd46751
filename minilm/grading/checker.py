"""The grader's checker: the process where a notebook's test cells decide its score.

The student's kernel runs every cell of the notebook, test cells too, but what it prints and
raises does not count. The checker, a Python process of the grader's (no student code ever runs
in it), runs the instructor's cells of the notebook again, their sources taken from the
gradebook: the setup cells as they are, and each test cell with the student's functions
replayed from the record the kernel made of that cell (recorder.py, replay.py). The checker's
output and its error, if any, become the test cell's outputs, and nbgrader scores those.

    python -m minilm.grading.checker

reads one JSON request per line on stdin, `{"source": ..., "names": [...], "record": ...,
"buffers": [file, ...]}` (`record` null for a setup cell; `buffers`: files holding the record's
large arrays, wire.py), and answers one JSON line: `{"stdout": ..., "error": null or
{"ename", "evalue", "lines"}}` (`lines`: where in the cell it was raised); `{"op":
"generators"}` asks for the state of the random generators the instructor's cells made.
`Checker` is the grader's side: it starts the process (as the kernel starts: its imports overlap
the kernel's; a grading worker forks it from a warm zygote, zygote.py), sends the setup cells as
they come without waiting for them, each test cell with its record, and starts it again (re-
running the cells so far) if it dies or runs past its time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

STDOUT_KEPT = 200_000  # characters of a test cell's printed output kept
RECORD_MAX_CHARS = 512 * 1024 * 1024  # a larger record of the kernel's is refused (scores 0)


# -- the checker process ------------------------------------------------------------------------

def run_cell(namespace: dict, request: dict, buffers=()) -> dict:
    """Run one instructor cell; a test cell with the student's functions replayed (from its
    record and the record's `buffers`)."""
    from . import notebook_tools
    from .replay import Replayed, Replayer

    names, record = request.get("names") or [], request.get("record")
    replayer = None
    if record is not None:
        replayer = Replayer(record, buffers)
        missing = record.get("missing") if isinstance(record, dict) else None
        for name in names:
            if isinstance(missing, list) and name in missing:
                namespace.pop(name, None)
            else:
                namespace[name] = Replayed(name, replayer)
        notebook_tools.set_fact_hook(replayer.fact)
    printed = io.StringIO()
    error = None
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(request["source"], request.get("name", "<cell>"), "exec"), namespace)
    except BaseException as failure:  # noqa: BLE001 - whatever the cell raised is its result
        note = f" [note: {replayer.notes[0]}]" if replayer and replayer.notes else ""
        lines = [frame.lineno for frame in traceback.extract_tb(failure.__traceback__)
                 if frame.filename == request.get("name", "<cell>")]
        error = {"ename": type(failure).__name__, "evalue": str(failure)[:STDOUT_KEPT] + note,
                 "lines": lines}
    finally:
        notebook_tools.set_fact_hook(None)
        for name in names:
            if isinstance(namespace.get(name), Replayed):
                del namespace[name]
    return {"stdout": printed.getvalue()[:STDOUT_KEPT], "error": error}


def generators(namespace: dict) -> dict:
    """{name: state} of the NumPy random generators the instructor's cells made: the kernel's
    are set to these before each test cell, so that both draw the same test data whatever the
    student's cells (or a restart of the kernel) did to them."""
    import numpy as np

    from .wire import encode

    return {name: encode(value.bit_generator.state) for name, value in namespace.items()
            if isinstance(value, np.random.Generator)}


def main() -> None:
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray writes to fd 1 stay out of the replies
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "generators":
            reply = generators(namespace)
        else:
            buffers = [Path(path).read_bytes() for path in request.get("buffers") or []]
            reply = run_cell(namespace, request, buffers)
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def _forward(stream, replies: queue.Queue) -> None:
    for line in stream:
        replies.put(line)
    replies.put(None)


# -- the grader's side ----------------------------------------------------------------------------

class CheckerFailed(RuntimeError):
    """The checker process died or ran past its time."""


class Checker:
    """The checker process of one notebook (started by `start`, or at the first cell sent)."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.history: list[str] = []  # the requests so far: sent again after a restart
        self.setup_errors: list[tuple[str, dict]] = []  # (cell, error) of the setup cells
        self._process = None
        self._replies: queue.Queue = queue.Queue()
        self._pending: list[str] = []  # cells sent whose replies are not read yet
        self._folder = None  # the checker's working folder, with the records' buffers
        self._stored = 0  # buffers written there

    def start(self) -> None:
        """Start the process now (its imports then overlap the kernel's start)."""
        if self._process is None:
            self._start()

    def run(self, source: str, name: str, names: list[str] | None = None,
            record=None, buffers=(), wait: bool = True) -> dict | None:
        """Run an instructor cell (a test cell when `record` is given, with the record's
        `buffers`) and return the reply; with `wait=False` (a setup cell) return at once: its
        reply is read before the next one, an error kept in `setup_errors`."""
        size = sum(memoryview(buffer).nbytes for buffer in buffers)
        request = {"source": source, "name": name, "names": names or [], "record": record,
                   "buffers": []}
        line = json.dumps(request) + "\n"
        if len(line) + size > RECORD_MAX_CHARS:  # the kernel sent too much: it counts as none
            request["record"] = {"events": [], "lost": True, "kernel_error":
                                 f"its record was over {RECORD_MAX_CHARS:,} bytes"}
            line = json.dumps(request) + "\n"
        elif buffers:
            request["buffers"] = self._store(buffers)
            line = json.dumps(request) + "\n"
        reply = self._request(line, name if not wait else None)
        self.history.append(line)
        return reply

    def generators(self) -> dict:
        """The state of the instructor's random generators now (see `generators`)."""
        return self._request(json.dumps({"op": "generators"}) + "\n")

    def _store(self, buffers) -> list[str]:
        self._ensure_folder()
        paths = []
        for buffer in buffers:
            self._stored += 1
            path = os.path.join(self._folder.name, f"minilm-buffer-{self._stored}")
            with open(path, "wb") as file:
                file.write(buffer)
            paths.append(path)
        return paths

    def _ensure_folder(self) -> None:
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="minilm-checker-")

    def _request(self, line: str, later: str | None = None) -> dict | None:
        """Send `line`; its reply, or None when `later` (the cell's name): read with the next."""
        try:
            if self._process is None:
                self._start()
            self._write(line)
            if later is not None:
                self._pending.append(later)
                return None
            while self._pending:
                name, reply = self._pending.pop(0), self._read()
                if reply.get("error"):
                    self.setup_errors.append((name, reply["error"]))
            return self._read()
        except CheckerFailed:
            self._stop()  # the next request starts a new checker (without this one)
            raise

    def _start(self) -> None:
        from .zygote import fork_checker

        self._ensure_folder()
        self._process = fork_checker(self._folder.name) or subprocess.Popen(
            [sys.executable, "-m", "minilm.grading.checker"], cwd=self._folder.name,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, encoding="utf-8")
        self._replies, self._pending = queue.Queue(), []
        threading.Thread(target=_forward, args=(self._process.stdout, self._replies),
                         daemon=True).start()
        for line in self.history:  # after a restart: the cells so far, again
            self._write(line)
            self._read()

    def _write(self, line: str) -> None:
        try:
            self._process.stdin.write(line)
            self._process.stdin.flush()
        except (OSError, ValueError) as error:  # ValueError: its pipe is closed
            raise CheckerFailed(f"the grader's checker stopped ({error})") from None

    def _read(self) -> dict:
        try:
            reply = self._replies.get(timeout=self.timeout)
        except queue.Empty:
            raise CheckerFailed(f"the grader's checker ran past {self.timeout:.0f} s") from None
        if reply is None:
            raise CheckerFailed("the grader's checker stopped")
        return json.loads(reply)

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        self._stop()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


if __name__ == "__main__":
    main()
