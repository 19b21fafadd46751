"""`ResilientExecute`: nbgrader's `Execute` step, made to survive a stuck or dead kernel and
to score outside the student's process.

What nbgrader 0.9.6 / nbclient do with a cell that runs too long (read in their source and
measured): at `Execute.timeout` the kernel gets an interrupt (SIGINT). A Python loop stops with
`KeyboardInterrupt`, the cell gets a `CellTimeoutError` output and grading goes on. A loop inside an
`@njit` function never looks at the interrupt: nbclient then waits `iopub_timeout` (4 s) for the
kernel, raises `CellTimeoutError`, the kernel is shut down and the whole submission fails (no
scores, "needs manual grading"). A kernel that dies (a segfault, `os._exit`) fails it the same way.

Here such a cell instead gets an error output that says what happened (so its test scores 0), the
kernel is restarted, the cells that ran before it are replayed silently (the setup and solution
cells: test cells are skipped, they define nothing later cells need, and their speed checks would
cost time), and execution goes on with the next cell, so the other exercises are still graded. If
the replay itself fails, every later cell gets an error output instead of running.

It also caps the output a cell may send (`max_output_chars`, counted while it arrives): a student
who prints in a tight loop cannot fill the grader's memory. Errors are always kept, and so is the
start of any stderr output (nbgrader scores a test cell that wrote to stderr 0).

Each test cell's score is decided outside the student's process (`scores_outside`, on by
default; scoring.py): the cell runs in the kernel with the student's calls recorded, then again
in the grader's checker with those calls replayed, and the checker's output is the cell's.

Messages for the instructor go to the nbgrader log, prefixed `minilm-grading:`.
"""

from __future__ import annotations

import json
import time

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer

from . import shelf
from .checker import Checker, CheckerFailed
from .scoring import START, checker_outputs, fetch_record, trusted_cells
from .scoring import bound_names as _bound
from .scoring import student_names as _student_names

NOTE = "minilm-grading:"  # prefix of the log lines that `minilm grade` shows per student
GRADER_ERRORS = ("CellTimeoutError", "DeadKernelError", "KernelLost")  # what the grader saw
STDERR_KEPT = 2000  # characters of a late stderr output kept after the output cap


def error_output(ename: str, evalue: str) -> NotebookNode:
    """An nbformat error output (ANSI red name, like nbgrader's timeout error)."""
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


def cell_name(cell, index: int) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"


def _size(msg) -> int:
    content = msg.get("content", {})
    if "text" in content:
        return len(content["text"])
    return sum(len(str(value)) for value in content.get("data", {}).values())


class ResilientExecute(Execute):
    """nbgrader's Execute; a stuck or dead kernel is restarted instead of failing the notebook."""

    max_output_chars = Integer(
        200_000, help="Output characters kept per cell while it runs; the rest is dropped "
                      "(errors are always kept). -1 means no limit.").tag(config=True)
    notebook_timeout = Integer(
        600, help="Seconds the whole notebook may run, restarts included; the cells left "
                  "when it is spent are not run (their tests score 0).").tag(config=True)

    scores_outside = Bool(
        True, help="Decide each test cell's score in the grader's checker, from a record of the "
                   "student's calls (scoring.py), not from the test cell's outputs in the "
                   "student's kernel.").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._replay = []  # sources of the cells to re-run after a restart, in order
        self._lost = None  # why the kernel could not be brought back (then nothing more runs)
        self._chars, self._truncated = 0, False
        self._deadline = time.monotonic() + self.notebook_timeout
        self._trusted = trusted_cells(resources) if self.scores_outside else None
        self._checker = Checker(self.timeout or self.notebook_timeout)
        self._instructor_names = set()
        try:
            if self._trusted is not None:
                self._checker.start()  # its imports overlap the kernel's start
            return super().preprocess(nb, resources, km)
        finally:
            self._checker.close()

    def preprocess_cell(self, cell, resources, index):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type != "code" or self._trusted is None or grade_id not in self._trusted:
            return self._run_cell(cell, resources, index)
        source = self._trusted[grade_id]
        if not (utils.is_grade(cell) and not utils.is_solution(cell)):
            self._instructor_names |= _bound(source)
            try:  # the checker runs it while the kernel does (its reply is read later)
                self._checker.run(source, grade_id, wait=False)
            except CheckerFailed as failure:
                self.log.warning("%s %s: %s", NOTE, grade_id, failure)
            return self._run_cell(cell, resources, index)
        return self._score_outside(cell, resources, index, source)

    def _run_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return super().preprocess_cell(cell, resources, index)
        self._chars = 0
        self._truncated = False
        left = self._deadline - time.monotonic()
        if left < 1 and not self._lost:
            self._lost = (f"the notebook used up its {self.notebook_timeout} s budget before "
                          f"{cell_name(cell, index)}")
            self.log.warning("%s %s", NOTE, self._lost)
        if self._lost:
            cell.outputs = [error_output("KernelLost", f"not run: {self._lost}")]
            return cell, self.resources
        cell_timeout = self.timeout
        self.timeout = int(min(cell_timeout or left, left))  # no cell outlasts the notebook budget
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except (CellTimeoutError, DeadKernelError) as error:
            self._recover(cell, index, error)
            return cell, self.resources
        finally:
            self.timeout = cell_timeout
        timeout_name = (self.error_on_timeout or {}).get("ename", "CellTimeoutError")
        timed_out = any(out.get("ename") == timeout_name
                        for out in cell.outputs if out.output_type == "error")
        if timed_out:
            self.log.warning("%s %s ran past the %s s timeout and was interrupted", NOTE,
                             cell_name(cell, index), self.timeout)
        elif not (utils.is_grade(cell) and not utils.is_solution(cell)):
            self._replay.append(cell.source)
        if self._truncated:
            self.log.warning("%s output of %s cut at %d characters", NOTE,
                             cell_name(cell, index), self.max_output_chars)
        return cell, resources

    # -- scores decided outside the student's process (scoring.py) -----------------------

    def _score_outside(self, cell, resources, index, source: str):
        from jupyter_core.utils import ensure_async, run_sync

        name = cell_name(cell, index)
        names = _student_names(source, self._instructor_names)
        self._instructor_names |= _bound(source)
        try:
            generators = json.dumps(self._checker.generators())
        except CheckerFailed as failure:
            self.log.warning("%s %s: %s", NOTE, name, failure)
            generators = "{}"
        for setup_name, error in self._checker.setup_errors:
            self.log.warning("%s the checker could not run %s: %s", NOTE, setup_name, error)
        self._checker.setup_errors.clear()
        if self.kc is not None and not self._lost:
            async def start():
                msg_id = await ensure_async(self.kc.execute(
                    START.format(names=names, generators=generators,
                                 off_limits=shelf.declared(source)),
                    silent=True, store_history=False))
                await self.async_wait_for_reply(msg_id)
            run_sync(start)()
        cell, resources = self._run_cell(cell, resources, index)
        if self._lost and not self.kc:
            return cell, resources
        seen = [out for out in cell.outputs  # what the grader itself saw go wrong: kept
                if out.output_type == "error" and out.ename in GRADER_ERRORS]
        record, buffers = None, []
        if self.kc is not None:
            left = max(1.0, min(60.0, self._deadline - time.monotonic()))
            record, buffers = run_sync(fetch_record)(self.kc, left)
        if not isinstance(record, dict):
            record, buffers = {"events": [], "lost": True}, []
        errors = seen or [out for out in cell.outputs if out.output_type == "error"]
        if errors:  # said when the checker misses a call (the kernel stopped there)
            record["kernel_error"] = f"{errors[0].ename}: {str(errors[0].evalue)[:300]}"
        try:
            reply = self._checker.run(source, name, names, record, buffers)
            cell.outputs = seen + checker_outputs(reply, source, cell.get("execution_count"))
        except CheckerFailed as failure:
            self.log.warning("%s %s: %s", NOTE, name, failure)
            cell.outputs = seen + [error_output("CheckerFailed", f"{failure}: this test "
                                                                 "scores 0")]
        return cell, resources

    # -- a stuck or dead kernel --------------------------------------------------------------

    def _recover(self, cell, index: int, error: Exception) -> None:
        name = cell_name(cell, index)
        if isinstance(error, CellTimeoutError):
            what = (f"the cell ran past the {self.timeout} s timeout and the kernel did not "
                    "respond to the interrupt (a loop inside compiled Numba code?)")
            ename = "CellTimeoutError"
        else:
            what = "the kernel died while running this cell (a crash, or os._exit / quit)"
            ename = "DeadKernelError"
        cell.outputs.append(error_output(
            ename, f"{what}; the grader restarted the kernel and went on with the next cell"))
        self.log.warning("%s %s: %s; restarting the kernel and replaying %d earlier cells",
                         NOTE, name, what, len(self._replay))
        try:
            self._restart_and_replay()
        except Exception as failure:  # whatever it is, nothing more can run
            self._lost = (f"the kernel could not be restarted after {name} "
                          f"({type(failure).__name__}: {failure})")
            self.log.warning("%s %s", NOTE, self._lost)

    def _restart_and_replay(self) -> None:
        from jupyter_core.utils import ensure_async, run_sync

        async def restart_and_replay():
            if self.kc is not None:
                await ensure_async(self.kc.stop_channels())
                self.kc = None
            await ensure_async(self.km.restart_kernel(now=True))
            await self.async_start_new_kernel_client()
            for source in self._replay:
                msg_id = await ensure_async(self.kc.execute(source, silent=True,
                                                            store_history=False))
                if await self.async_wait_for_reply(msg_id) is None:
                    raise TimeoutError(f"replaying an earlier cell took over {self.timeout} s")

        run_sync(restart_and_replay)()

    # -- capped output -----------------------------------------------------------------------

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "error" or self.max_output_chars < 0:
            return super().output(outs, msg, display_id, cell_index)
        self._chars += _size(msg)
        if self._chars <= self.max_output_chars:
            return super().output(outs, msg, display_id, cell_index)
        content = msg.get("content", {})
        first_stderr = (msg["msg_type"] == "stream" and content.get("name") == "stderr"
                        and not any(o.get("name") == "stderr" for o in outs))
        if not self._truncated:
            self._truncated = True
            cut = f"\n... output cut by the grader after {self.max_output_chars:,} characters ...\n"
            outs.append(NotebookNode(output_type="stream", name="stdout", text=cut))
        if first_stderr:  # keep its start: a stderr output is what makes nbgrader score 0
            short = {**msg, "content": {**content, "text": content["text"][:STDERR_KEPT]}}
            return super().output(outs, short, display_id, cell_index)
        return None
