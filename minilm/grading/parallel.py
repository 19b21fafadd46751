"""`minilm grade ASSIGNMENT --workers N`: autograde a whole class in parallel worker processes.

Every `submitted/STUDENT/ASSIGNMENT/` of the course directory is autograded by nbgrader's own
`Autograde` converter (with the course's `nbgrader_config.py`) in one of N worker processes
("spawn"ed; each imports nbgrader once, then grades one student after another). All workers
write to the one SQLite gradebook: nbgrader commits after every few rows, and each connection
waits up to `SQLITE_BUSY_TIMEOUT` s for another's lock instead of failing (measured: no lost
or doubled rows, `PRAGMA integrity_check` ok).

Each student gets one line, a score or a clear error; nothing one student submits can stop the
others (a worker process that dies is replaced and its students are graded again, one by one).
The lines also go to `reports/ASSIGNMENT.csv`, and nbgrader's log of each student to
`reports/ASSIGNMENT/STUDENT.log`.
"""

from __future__ import annotations

import csv
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

from .course import UnusableNotebook, identify_assignment, read_notebook


@dataclass
class StudentResult:
    """The outcome for one student: status "graded" (with a score) or "error" (with why)."""
    student: str
    status: str
    score: float | None = None
    max_score: float | None = None
    error: str = ""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        if self.status == "graded":
            text = f"{self.student}: {self.score:g} / {self.max_score:g}"
        else:
            text = f"{self.student}: ERROR {self.error}"
        return text + "".join(f"\n    note: {note}" for note in self.notes)


def grade_student(root: str, assignment: str, student: str, timeout: float | None,
                  url: str, source: str) -> StudentResult:
    """Autograde one submission (runs in a worker process) and read its score back."""
    from .runner import course_config, failure_reason, notes, run_nbgrader, scores

    started = time.perf_counter()
    root_path = Path(root)
    folder = root_path / "submitted" / student / assignment
    path = folder / f"{assignment}.ipynb"
    problem, found_notes = "", []
    if not path.is_file():
        others = sorted(p.name for p in folder.glob("*.ipynb"))
        problem = (f"no {assignment}.ipynb in {folder}"
                   + (f" (found {', '.join(others)}: rename it)" if others else ""))
    else:
        try:
            match = identify_assignment(read_notebook(path), Path(source), assignment)
            if match.assignment != assignment:
                found_notes.append(f"this is not a notebook of {assignment}: {match.reason}")
        except UnusableNotebook as error:
            problem = str(error).replace(f"{path}: ", f"{path.relative_to(root_path)}: ")
    config = course_config(root_path, timeout=timeout, url=url)
    # run even for an unusable file: nbgrader then records the submission in the gradebook
    result = run_nbgrader("autograde", root_path, assignment, student, config=config)
    log_file = root_path / "reports" / assignment / f"{student}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text((result.get("log") or "") + (result.get("error") or ""), encoding="utf-8")
    found = scores(url, assignment, student) if result["success"] and not problem else None
    seconds = time.perf_counter() - started
    row_notes = found_notes + notes(result.get("log"))
    if found is None:
        return StudentResult(student, "error", error=problem or failure_reason(result),
                             notes=row_notes, seconds=seconds)
    return StudentResult(student, "graded", found.score, found.max_score, notes=row_notes,
                         seconds=seconds)


@dataclass
class GradingReport:
    assignment: str
    workers: int
    results: list[StudentResult]
    seconds: float
    problems: list[str]  # gradebook checks that failed (empty: all is well)

    @property
    def per_minute(self) -> float:
        return 60 * len(self.results) / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        graded = sum(r.status == "graded" for r in self.results)
        failed = len(self.results) - graded
        return (f"{len(self.results)} submissions of {self.assignment} in {self.seconds:.0f} s "
                f"with {self.workers} worker{'s' * (self.workers != 1)}: "
                f"{self.per_minute:.1f} submissions/minute; {graded} graded"
                + (f", {failed} could not be graded (the ERROR lines)" if failed else ""))


def students_of(root: Path, assignment: str) -> list[str]:
    submitted = Path(root) / "submitted"
    return sorted(d.parent.name for d in submitted.glob(f"*/{assignment}") if d.is_dir()) \
        if submitted.is_dir() else []


def ensure_generated(root: Path, assignment: str, config, url: str, log=print) -> Path:
    """The assignment's source folder; runs generate_assignment first when the gradebook does
    not know the assignment yet (autograde needs it there)."""
    from nbgrader.api import Gradebook, MissingEntry

    from .runner import failure_reason, run_nbgrader

    source = Path(root) / (config.CourseDirectory.get("source_directory") or "source")
    if not (source / assignment).is_dir():
        raise FileNotFoundError(f"no source folder {source / assignment} in the course {root}")
    with Gradebook(url) as gradebook:
        try:
            gradebook.find_assignment(assignment)
            return source
        except MissingEntry:
            pass
    log(f"{assignment} is not in the gradebook yet: running generate_assignment first")
    result = run_nbgrader("generate_assignment", root, assignment, config=config)
    if not result["success"]:
        raise RuntimeError(f"generate_assignment {assignment} failed: {failure_reason(result)}")
    return source


def grade_assignment(root, assignment: str, workers: int = 1, timeout: float | None = None,
                     students=None, log=print) -> GradingReport:
    """Autograde every submission of `assignment` in course `root` with `workers` processes."""
    from .runner import course_config, gradebook_url

    root = Path(root).resolve()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not root.is_dir():
        raise FileNotFoundError(f"course directory {root} does not exist")
    config = course_config(root)
    url = gradebook_url(root, config)
    config.CourseDirectory.db_url = url
    source = ensure_generated(root, assignment, config, url, log)
    students = list(students) if students is not None else students_of(root, assignment)
    if not students:
        raise FileNotFoundError(f"no submissions: no {root}/submitted/*/{assignment}/ folders")
    args = (str(root), assignment)
    started = time.perf_counter()
    results = _run_pool(args, students, workers, timeout, url, str(source), log)
    crashed = [r.student for r in results if r.status == "crashed"]
    results = [r for r in results if r.status != "crashed"]
    for student in crashed:  # again, alone, so that one bad submission cannot take others along
        (again,) = _run_pool(args, [student], 1, timeout, url, str(source), log)
        if again.status == "crashed":
            again.status = "error"
        results.append(again)
    seconds = time.perf_counter() - started
    results.sort(key=lambda r: r.student)
    report = GradingReport(assignment, workers, results, seconds,
                           check_gradebook(url, assignment, results))
    write_csv(root / "reports" / f"{assignment}.csv", results)
    return report


def _run_pool(args, students, workers, timeout, url, source, log) -> list[StudentResult]:
    results = []
    with ProcessPoolExecutor(min(workers, len(students)), mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(grade_student, *args, student, timeout, url, source): student
                   for student in students}
        for future in as_completed(futures):
            student = futures[future]
            try:
                result = future.result()
            except BrokenProcessPool:
                result = StudentResult(student, "crashed", error="the grading process died")
            except Exception as error:  # a bug in grading this one student: record it, go on
                result = StudentResult(student, "error", error=f"{type(error).__name__}: {error}")
            if result.status != "crashed":
                log(result.line())
            results.append(result)
    return results


def check_gradebook(url: str, assignment: str, results) -> list[str]:
    """What is wrong with the gradebook after grading: SQLite's integrity check, and every
    graded student there exactly once with the score that was reported."""
    from nbgrader.api import Gradebook

    problems = []
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///"):].split("?")[0]) as db:
            verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            problems.append(f"PRAGMA integrity_check: {verdict}")
    with Gradebook(url) as gradebook:
        found = {}
        for submission in gradebook.assignment_submissions(assignment):
            found.setdefault(submission.student_id, []).append(submission.score)
    for result in results:
        if result.status != "graded":
            continue
        if len(found.get(result.student, [])) != 1:
            problems.append(f"{result.student}: {len(found.get(result.student, []))} "
                            "submissions in the gradebook, expected 1")
        elif found[result.student][0] != result.score:
            problems.append(f"{result.student}: {found[result.student][0]} in the gradebook, "
                            f"{result.score} reported")
    return problems


def write_csv(path: Path, results) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["student", "status", "score", "max_score", "seconds",
                                    "error", "notes"])
        writer.writeheader()
        for result in results:
            row = asdict(result)
            row["notes"] = "; ".join(result.notes)
            row["seconds"] = f"{result.seconds:.1f}"
            writer.writerow(row)
