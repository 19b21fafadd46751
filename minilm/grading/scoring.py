"""Scores decided outside the student's process: what `ResilientExecute` does around a test cell
(README: "Grading you can trust").

For each test cell of a submission:

1. the student's names that the cell uses are found in its source (`student_names`: the names
   it reads that no instructor cell defines) and the kernel is told to record their calls
   (`recorder.start`);
2. the cell runs in the student's kernel as always;
3. the kernel's record is fetched (`fetch_record`: one display message of its own type, read
   by the grader, never put in the notebook);
4. the grader's checker (checker.py) runs the cell's source from the gradebook, with the
   student's functions replayed from that record, and its output replaces the kernel's.

Which cells are the instructor's comes from the gradebook (`trusted_cells`): the locked cells
that nbgrader recorded when the assignment was generated, with their sources as recorded there.
A cell a student added, or a solution cell, never runs in the checker.
"""

from __future__ import annotations

import ast
import builtins
import time

from nbformat.notebooknode import NotebookNode

from .recorder import MIME


def trusted_cells(resources: dict) -> dict[str, str] | None:
    """{grade_id: source} of the notebook's locked, non-solution code cells in the gradebook;
    None where the notebook is not being autograded (no gradebook to ask)."""
    info = (resources or {}).get("nbgrader", {})
    if not info.get("db_url") or not info.get("notebook"):
        return None
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(info["db_url"]) as gradebook:
        try:
            notebook = gradebook.find_notebook(info["notebook"], info["assignment"])
        except MissingEntry:
            return None
        solutions = {cell.name for cell in notebook.solution_cells}
        return {cell.name: cell.source for cell in notebook.source_cells
                if cell.cell_type == "code" and cell.locked and cell.name not in solutions}


def bound_names(source: str) -> set[str]:
    """Every name the code binds anywhere (assignments, defs, imports, loop targets, ...)."""
    bound = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            bound.update(node.names)
    return bound


def student_names(source: str, instructor_names: set[str]) -> list[str]:
    """The names a test cell reads that come from the student's cells: read, but bound neither
    by the cell itself, nor by an instructor cell, nor by Python."""
    read = {node.id for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return sorted(read - bound_names(source) - instructor_names - set(dir(builtins)))


START = ("__import__('minilm.grading.recorder', fromlist=['start'])"
         ".start(globals(), {names!r}, {generators!r}, {off_limits!r})")
FINISH = "__import__('minilm.grading.recorder', fromlist=['finish']).finish()"


async def fetch_record(kc, timeout: float):
    """Ask the kernel for its record of the test cell just run: (the record, the message's
    binary buffers) as the kernel sent them (the checker reads them with care), or (None, [])
    when it sent none in time."""
    from jupyter_core.utils import ensure_async

    msg_id = await ensure_async(kc.execute(FINISH, store_history=False, allow_stdin=False))
    deadline, record, buffers = time.monotonic() + timeout, None, []
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ensure_async(kc.get_iopub_msg(timeout=left))
        except Exception:  # queue.Empty: nothing more in time
            break
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        content = msg.get("content", {})
        if msg["msg_type"] == "display_data" and record is None:
            record = content.get("data", {}).get(MIME)  # its size is capped by the checker
            buffers = msg.get("buffers") or []
        elif msg["msg_type"] == "status" and content.get("execution_state") == "idle":
            break
    while (left := deadline - time.monotonic()) > 0:  # its reply, so that none is left queued
        try:
            reply = await ensure_async(kc.get_shell_msg(timeout=left))
        except Exception:
            break
        if reply.get("parent_header", {}).get("msg_id") == msg_id:
            break
    return record, buffers


def checker_outputs(reply: dict, source: str, count) -> list[NotebookNode]:
    """The checker's reply as the outputs of the test cell `source` (run as execution `count`):
    what it printed, and its error, with the lines of the cell it passed quoted as IPython
    quotes them (the feedback hides those of hidden tests)."""
    from .execute import error_output

    outputs = []
    if reply.get("stdout"):
        outputs.append(NotebookNode(output_type="stream", name="stdout", text=reply["stdout"]))
    error = reply.get("error")
    if error:
        output = error_output(error["ename"], error["evalue"])
        lines = source.split("\n")
        output.traceback[:0] = [f"Cell In[{count}], line {n}\n----> {n} {lines[n - 1]}"
                                for n in error.get("lines", []) if 0 < n <= len(lines)]
        outputs.append(output)
    return outputs
