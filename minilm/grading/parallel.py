"""`minilm grade ASSIGNMENT --workers N`: autograde a whole class in parallel worker processes.

Every `submitted/STUDENT/ASSIGNMENT/` of the course directory is autograded by nbgrader's own
`Autograde` converter (with the course's `nbgrader_config.py`) in one of N worker processes
("spawn"ed; each imports nbgrader once, then grades one student after another). All workers
write to the one SQLite gradebook: nbgrader commits after every few rows, and each connection
waits up to `SQLITE_BUSY_TIMEOUT` s for another's lock instead of failing (measured: no lost
or doubled rows, `PRAGMA integrity_check` ok).

Each student gets one line, a score or a clear error, as soon as they are graded; nothing one
student submits can stop the others. A worker process that dies (a crash, or killed: out of
memory, say) ends its pool: the students it had in hand are graded again, alone, with a note
(one whose grading dies again gets an ERROR line), and the others go on in a new pool.

Results are committed per student as they come: a record `reports/ASSIGNMENT/STUDENT.json` (with
the sha256 of the submitted notebook and of the assignment's source notebook) beside nbgrader's log
`STUDENT.log`, and the student's row in `reports/ASSIGNMENT.csv` (every student once), so a run
that is killed loses nothing already graded. A rerun keeps the records whose two notebooks are
unchanged (and whose score the gradebook still has) and grades the others; `fresh` regrades
everyone. Ctrl-C or SIGTERM stops the workers (each shuts its student's kernel down first).
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import active_children, get_context
from pathlib import Path

from .course import UnusableNotebook, assignment_notebook, identify_assignment, read_notebook
from .records import (
    StudentResult,
    check_gradebook,
    file_sha256,
    kept_results,
    student_report,
    write_csv,
    write_record,
)

STOP_GRACE = 30  # seconds a stopped worker has to shut its kernel down before it is killed
CRASHED = "the grading process died (crash); regraded alone: "  # start of the note


def submitted_notebook(root: Path, assignment: str, student: str) -> Path:
    return Path(root) / "submitted" / student / assignment / f"{assignment}.ipynb"


def grade_student(root: str, assignment: str, student: str, timeout: float | None,
                  url: str, source: str, isolation=None) -> StudentResult:
    """Autograde one submission (runs in a worker process) and read its score back."""
    from .runner import course_config, failure_reason, notes, run_nbgrader, scores

    started = time.perf_counter()
    root_path = Path(root)
    path = submitted_notebook(root_path, assignment, student)
    problem, found_notes = "", []
    if not path.is_file():
        others = sorted(p.name for p in path.parent.glob("*.ipynb"))
        problem = (f"no {assignment}.ipynb in {path.parent}"
                   + (f" (found {', '.join(others)}: rename it)" if others else ""))
    else:
        try:
            match = identify_assignment(read_notebook(path), Path(source), assignment)
            if match.assignment != assignment:
                found_notes.append(f"this is not a notebook of {assignment}: {match.reason}")
        except UnusableNotebook as error:
            problem = str(error).replace(f"{path}: ", f"{path.relative_to(root_path)}: ")
    config = course_config(root_path, timeout=timeout, url=url, isolation=isolation)
    # run even for an unusable file: nbgrader then records the submission in the gradebook
    result = run_nbgrader("autograde", root_path, assignment, student, config=config)
    log_file = student_report(root_path, assignment, student, ".log")
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
        """Submissions graded per minute in this run (the kept ones not counted)."""
        done = sum(not r.kept for r in self.results)
        return 60 * done / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        graded = sum(r.status == "graded" for r in self.results)
        failed = len(self.results) - graded
        kept = sum(r.kept for r in self.results)
        return (f"{len(self.results)} submissions of {self.assignment} in {self.seconds:.0f} s "
                f"with {self.workers} worker{'s' * (self.workers != 1)}: "
                f"{self.per_minute:.1f} submissions/minute; {graded} graded"
                + (f" ({kept} kept from an earlier run)" if kept else "")
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
                     students=None, log=print, fresh: bool = False,
                     isolation=None) -> GradingReport:
    """Autograde every submission of `assignment` in course `root` with `workers` processes,
    committing each student's result as it comes. Students with a valid record of an earlier run
    are kept, unless `fresh`. KeyboardInterrupt (also for SIGTERM, see `minilm grade`) stops the
    workers, says what was graded, and is raised again. `isolation` (a `config.Isolation`, default
    the course config's: sandboxed wherever possible) says how the kernels run;
    `config.SandboxUnavailable` before anything is graded when it asks for a sandbox that cannot
    run here."""
    from .runner import course_config, gradebook_url

    root = Path(root).resolve()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not root.is_dir():
        raise FileNotFoundError(f"course directory {root} does not exist")
    config = course_config(root, isolation=isolation)
    url = gradebook_url(root, config)
    config.CourseDirectory.db_url = url
    source = ensure_generated(root, assignment, config, url, log)
    students = list(students) if students is not None else students_of(root, assignment)
    if not students:
        raise FileNotFoundError(f"no submissions: no {root}/submitted/*/{assignment}/ folders")
    source_sha256 = file_sha256(assignment_notebook(source, assignment))
    fingerprints = {student: {"sha256": file_sha256(submitted_notebook(root, assignment, student)),
                              "source_sha256": source_sha256} for student in students}
    if fresh:
        for student in students:
            student_report(root, assignment, student, ".json").unlink(missing_ok=True)
    results = kept_results(root, url, assignment, fingerprints)
    table = root / "reports" / f"{assignment}.csv"
    write_csv(table, sorted(results.values(), key=lambda r: r.student))
    for student in sorted(results):
        log(results[student].line())

    def finished(result: StudentResult, note: str = "") -> None:
        result.notes[:0] = [note] if note else []
        results[result.student] = result
        write_record(student_report(root, assignment, result.student, ".json"), result,
                     fingerprints[result.student])
        write_csv(table, sorted(results.values(), key=lambda r: r.student))
        log(result.line())

    def grading(student):
        return str(root), assignment, student, timeout, url, str(source), isolation

    started = time.perf_counter()
    try:
        crashed = _grade_in_pools([s for s in students if s not in results], workers, grading,
                                  finished)
        for student in crashed:  # again, alone, so that one bad submission cannot take others along
            if _grade_in_pools([student], 1, grading,
                               lambda result: finished(result, CRASHED + "this time it finished")):
                finished(StudentResult(student, "error", error="the grading process died (crash), "
                                       "also when graded alone"), CRASHED + "it died again")
    except KeyboardInterrupt:
        kept = sum(r.kept for r in results.values())
        log(f"interrupted: {len(results)} of {len(students)} students have their result in {table}"
            + (f" ({kept} kept from an earlier run)" if kept else "")
            + f"; run the same `minilm grade` command again to grade the other "
              f"{len(students) - len(results)} (it keeps these; --fresh regrades everyone)")
        raise
    seconds = time.perf_counter() - started
    ordered = sorted(results.values(), key=lambda r: r.student)
    return GradingReport(assignment, workers, ordered, seconds,
                         check_gradebook(url, assignment, ordered))


def _grade_in_pools(students, workers: int, grading, finished) -> list[str]:
    """Grade `students` in `workers` processes, one student per worker at a time, and call
    `finished(result)` for each as it is done. Returns the students whose worker died while it
    had them: that ends the pool, and the students not started yet go on in a new one."""
    waiting, crashed = list(students), []
    while waiting:
        before = set(active_children())
        pool = ProcessPoolExecutor(min(workers, len(waiting)), mp_context=get_context("spawn"),
                                   initializer=_start_worker)
        running, broken = {}, False
        try:
            while running or (waiting and not broken):
                while waiting and not broken and len(running) < workers:
                    try:
                        running[pool.submit(_grade_in_worker, *grading(waiting[0]))] = waiting[0]
                        waiting.pop(0)
                    except BrokenProcessPool:
                        broken = True
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    student = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        crashed.append(student)
                        broken = True
                        continue
                    except Exception as error:  # a bug in grading this one student: record it
                        result = StudentResult(student, "error",
                                               error=f"{type(error).__name__}: {error}")
                    finished(result)
        except KeyboardInterrupt:
            _stop(pool, set(active_children()) - before)
            raise
        finally:
            pool.shutdown(cancel_futures=True)
    return crashed


def _start_worker() -> None:
    """A pool worker starts: it ignores SIGINT while idle (see `_grade_in_worker`) and starts its
    checkers' zygote (zygote.py)."""
    from .zygote import start

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    start()


def _grade_in_worker(*args) -> StudentResult:
    """`grade_student` in a pool worker. SIGINT or SIGTERM (the grading is being stopped)
    interrupts it, so that nbgrader and nbclient shut the student's kernel down, and then ends
    the worker (its pool counts that as a crash). An idle worker ignores SIGINT (a Ctrl-C reaches
    every process of the terminal) and dies of SIGTERM."""
    received = []

    def interrupt(number, frame):
        if not received:  # a second signal must not break off the kernel's shutdown
            received.append(number)
            raise KeyboardInterrupt

    before = {number: signal.signal(number, interrupt)
              for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        return grade_student(*args)
    finally:
        if received:
            os._exit(128 + received[0])
        for number, handler in before.items():
            signal.signal(number, handler)


def _stop(pool: ProcessPoolExecutor, workers) -> None:
    """Stop a pool now: no new students; each worker gets SIGTERM (it shuts its kernel down and
    ends) and is killed if it is still there after STOP_GRACE s."""
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()
