"""The grader's checker: the process where a notebook's test cells decide its score.

The student's kernel runs every cell of the notebook, test cells too, but what it prints and
raises does not count. The checker, a Python process of the grader's (no student code ever runs
in it), runs the instructor's cells of the notebook again, their sources taken from the
gradebook: the setup cells as they are, and each test cell with the student's functions
replayed from the record the kernel made of that cell (recorder.py, replay.py). The checker's
output and its error, if any, become the test cell's outputs, and nbgrader scores those.

    python -m minilm.grading.checker

reads one JSON request per line on stdin, `{"source": ..., "names": [...], "record": ...}`
(`record` null for a setup cell), and answers one JSON line: `{"stdout": ..., "error": null or
{"ename", "evalue", "lines"}}` (`lines`: where in the cell it was raised); `{"op":
"generators"}` asks for the state of the random generators the instructor's cells made.
`Checker` is the grader's side: it starts the process, sends the cells and starts it again
(re-running the cells so far) if it dies or runs past its time.
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

STDOUT_KEPT = 200_000  # characters of a test cell's printed output kept
RECORD_MAX_CHARS = 512 * 1024 * 1024  # a larger record of the kernel's is refused (scores 0)


# -- the checker process ------------------------------------------------------------------------

def run_cell(namespace: dict, request: dict) -> dict:
    """Run one instructor cell; a test cell with the student's functions replayed."""
    from . import notebook_tools
    from .replay import Replayed, Replayer

    names, record = request.get("names") or [], request.get("record")
    replayer = None
    if record is not None:
        replayer = Replayer(record)
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
        reply = generators(namespace) if request.get("op") == "generators" else \
            run_cell(namespace, request)
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
    """The checker process of one notebook, started at the first cell sent."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.history: list[str] = []  # the requests so far: sent again after a restart
        self._process = None
        self._replies: queue.Queue = queue.Queue()
        self._folder = None

    def run(self, source: str, name: str, names: list[str] | None = None,
            record=None) -> dict:
        """Run an instructor cell (a test cell when `record` is given) and return the reply."""
        request = {"source": source, "name": name, "names": names or [], "record": record}
        line = json.dumps(request) + "\n"
        if len(line) > RECORD_MAX_CHARS:  # the kernel sent too much: it counts as no record
            request["record"] = {"events": [], "lost": True, "kernel_error":
                                 f"its record was over {RECORD_MAX_CHARS:,} characters"}
            line = json.dumps(request) + "\n"
        reply = self._request(line)
        self.history.append(line)
        return reply

    def generators(self) -> dict:
        """The state of the instructor's random generators now (see `generators`)."""
        return self._request(json.dumps({"op": "generators"}) + "\n")

    def _request(self, line: str) -> dict:
        if self._process is None:
            self._start()
        try:
            return self._send(line)
        except CheckerFailed:
            self.close()  # the next request starts a new checker (without this one)
            raise

    def _start(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="minilm-checker-")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "minilm.grading.checker"], cwd=self._folder.name,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, encoding="utf-8")
        self._replies = queue.Queue()
        threading.Thread(target=_forward, args=(self._process.stdout, self._replies),
                         daemon=True).start()
        for line in self.history:  # after a restart: the cells so far, again
            self._send(line)

    def _send(self, line: str) -> dict:
        try:
            self._process.stdin.write(line)
            self._process.stdin.flush()
            reply = self._replies.get(timeout=self.timeout)
        except queue.Empty:
            raise CheckerFailed(f"the grader's checker ran past {self.timeout:.0f} s") from None
        except OSError as error:
            raise CheckerFailed(f"the grader's checker stopped ({error})") from None
        if reply is None:
            raise CheckerFailed("the grader's checker stopped")
        return json.loads(reply)

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


if __name__ == "__main__":
    main()
