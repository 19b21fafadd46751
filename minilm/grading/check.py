"""`minilm check NOTEBOOK`: a student's self-check, with the hidden tests where they are at hand.

It finds the notebook's assignment in a folder of assignments (`course.find_source`): the
repository's `solutions/`, with the hidden tests; else (a student bundle, a non-editable install,
`--visible-only`) the release the student got, whose test cells hold the visible tests only, and
then it says so. It makes a temporary course directory with that assignment as the source, runs
nbgrader's `generate_assignment` and `autograde` there exactly as the instructor's grading does,
and reads the scores back from that gradebook: one row per test cell (score / points, and the
first line of the error that cost the points), then the total. Nothing is written next to the
student's notebook.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .course import (
    UnusableNotebook,
    assignment_notebook,
    find_source,
    grade_ids,
    identify_assignment,
    read_notebook,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STUDENT = "you"  # the student id of the one submission in the temporary course
VISIBLE_ONLY = "visible tests only: the hidden tests are the instructor's; your grade may differ"


@dataclass
class CheckResult:
    """The outcome of checking one notebook."""
    notebook: Path
    assignment: str
    how: str  # how the assignment was found
    rows: list[tuple[str, float | None, float, str]] = field(default_factory=list)
    # (test cell id, score or None when not scored, points, why points were lost)
    notes: list[str] = field(default_factory=list)  # what the grader had to repair
    error: str = ""  # nbgrader could not grade the file at all
    seconds: float = 0.0
    source: Path | None = None  # the folder of assignments whose tests ran
    visible_only: bool = False  # its test cells had no hidden tests (a release)

    @property
    def score(self) -> float:
        return sum(score or 0 for _, score, _, _ in self.rows)

    @property
    def max_score(self) -> float:
        return sum(points for _, _, points, _ in self.rows)


def check_notebook(path, source=None, assignment: str | None = None,
                   timeout: float | None = None, *, visible_only: bool = False,
                   isolation=None) -> CheckResult:
    """Autograde one notebook with the tests of its assignment: the hidden ones too when the
    source holds them, the release's visible ones when it is a release or `visible_only`
    (`course.find_source`). UnusableNotebook when the file cannot be graded (missing, not a
    notebook, of no assignment); FileNotFoundError when no source is found. `isolation` (a
    `config.Isolation`; default: the sandbox wherever one can run, else none, with a note)."""
    from .config import Isolation
    from .release import generate_into, make_course
    from .runner import course_config, db_url, failure_reason, notes, run_nbgrader, scores
    from .sandbox import sandbox_problem

    started = time.perf_counter()
    isolation = isolation or Isolation()
    unsandboxed = [] if isolation.sandbox is False or not sandbox_problem() else [
        "ran without a sandbox (fine for checking your own work; the instructor's grading "
        f"sandboxes): {sandbox_problem()}"]
    path = Path(path)
    nb = read_notebook(path)
    where = find_source(path, source, visible_only)
    source = where.folder
    if assignment is not None:
        assignment_notebook(source, assignment)  # FileNotFoundError naming the known ones
        how = "given with --assignment"
    else:
        match = identify_assignment(nb, source, path.stem)
        if match.assignment is None:
            raise UnusableNotebook(f"{path}: not a notebook of any assignment in {source}: "
                                   f"{match.reason}; pass --assignment NAME to grade it anyway")
        assignment, how = match.assignment, match.reason
    with tempfile.TemporaryDirectory(prefix="minilm-check-") as tmp:
        root = make_course(Path(tmp), source, [assignment], timeout=timeout)
        generate_into(root, [assignment])
        submitted = root / "submitted" / STUDENT / assignment
        submitted.mkdir(parents=True)
        shutil.copyfile(path, submitted / f"{assignment}.ipynb")
        result = run_nbgrader("autograde", root, assignment, STUDENT,
                              config=course_config(root, timeout=timeout, isolation=isolation))
        check = CheckResult(path, assignment, how, notes=notes(result.get("log")) + unsandboxed,
                            source=source, visible_only=not where.hidden)
        found = scores(db_url(root, None), assignment, STUDENT) if result["success"] else None
        if found is None:
            check.error = failure_reason(result)
        else:
            graded = root / "autograded" / STUDENT / assignment / f"{assignment}.ipynb"
            reasons = _lost_points(graded)
            order = grade_ids(read_notebook(assignment_notebook(source, assignment)))
            for cell_id in sorted(found.cells, key=lambda c: order.index(c) if c in order
                                  else len(order)):
                score, points = found.cells[cell_id]
                check.rows.append((cell_id, score, points, reasons.get(cell_id, "")))
    check.seconds = time.perf_counter() - started
    return check


def _lost_points(graded: Path) -> dict[str, str]:
    """{test cell id: first line of its last error (or of its stderr)} of a graded notebook."""
    try:
        nb = json.loads(graded.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    reasons = {}
    for cell in nb.get("cells", []):
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        stderr = [o for o in cell.get("outputs", []) if o.get("name") == "stderr"]
        if errors:  # the last: after a timeout that is the grader's, not the KeyboardInterrupt
            error = errors[-1]
            lines = str(error.get("evalue", "")).strip().splitlines() or [
                ANSI.sub("", line) for line in error.get("traceback", [])[-1:]]
            text, ename = (lines[0].strip() if lines else ""), str(error.get("ename"))
            if ename == "NotImplementedError" and text in ("", ename, ename + ":"):
                text = "not written yet"
            reasons[grade_id] = text if text.startswith(ename) else (
                f"{ename}: {text}" if text else ename)
        elif stderr:
            lines = "".join(stderr[0].get("text", "")).strip().splitlines()
            reasons[grade_id] = f"wrote to stderr: {lines[0] if lines else ''}"
    return {key: (value if len(value) <= 90 else value[:87] + "...")
            for key, value in reasons.items() if key}


def _number(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def format_check(check: CheckResult) -> str:
    """The per-test table and total that `minilm check` prints."""
    lines = [f"{check.notebook}: assignment {check.assignment} ({check.how})"]
    if check.visible_only:
        lines.append(VISIBLE_ONLY)
    if check.error:
        lines.append(f"could not grade it: {check.error}")
        return "\n".join(lines)
    width = max([len("test cell")] + [len(row[0]) for row in check.rows])
    lines.append(f"  {'test cell':<{width}}  score")
    for cell_id, score, points, reason in check.rows:
        mark = f"{_number(score)} / {_number(points)}"
        lines.append(f"  {cell_id:<{width}}  {mark:<9}  {reason}".rstrip())
    lines.append(f"  {'total':<{width}}  {_number(check.score)} / {_number(check.max_score)}")
    for note in check.notes:
        lines.append(f"note: {note}")
    tests = "visible tests" if check.visible_only else "hidden tests"
    lines.append(f"(graded with the {tests} of {check.source} in {check.seconds:.0f} s)")
    return "\n".join(lines)
