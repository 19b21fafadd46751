"""Running nbgrader's own converters in this process, and reading scores from its gradebook.

`run_nbgrader("autograde", root, "ch01_numba", student="alice")` does what
`nbgrader autograde ch01_numba --student alice --force` does in the course directory `root`
(same converter class, same config: the course's `nbgrader_config.py`), without paying for a new
Python and nbgrader import (seconds) per student, and returns nbgrader's log. `scores` reads one
submission back from the gradebook through nbgrader's `Gradebook` API.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .execute import NOTE

SQLITE_BUSY_TIMEOUT = 120  # seconds a writer waits for another process's gradebook lock


def db_url(root: Path, busy_timeout: float | None = SQLITE_BUSY_TIMEOUT) -> str:
    """nbgrader's default gradebook (root/gradebook.db), with an SQLite busy timeout so that
    several processes can write to it (each waits for the others' short transactions)."""
    return with_busy_timeout(f"sqlite:///{Path(root).resolve() / 'gradebook.db'}", busy_timeout)


def with_busy_timeout(url: str, busy_timeout: float | None = SQLITE_BUSY_TIMEOUT) -> str:
    """`url` with an SQLite busy timeout added (other databases, e.g. PostgreSQL, unchanged)."""
    if busy_timeout is None or not url.startswith("sqlite:") or "timeout=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}timeout={busy_timeout:g}"


def gradebook_url(root: Path, config) -> str:
    """The gradebook of course `root`: `CourseDirectory.db_url` from its config (PostgreSQL,
    say) or nbgrader's default root/gradebook.db; SQLite gets a busy timeout."""
    configured = config.CourseDirectory.get("db_url") if "CourseDirectory" in config else None
    return with_busy_timeout(configured) if configured else db_url(root)


def course_config(root: Path, timeout: float | None = None, url: str | None = None,
                  isolation=None):
    """The nbgrader config of course directory `root`: its `nbgrader_config.py` when it has one
    (loaded the way nbgrader loads it), else the course settings; then the overrides (`isolation`:
    a `config.Isolation`)."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    from .config import configure

    root = Path(root).resolve()
    if (root / "nbgrader_config.py").is_file():
        config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    else:
        config = configure(Config())
    config.CourseDirectory.root = str(root)
    if timeout is not None:
        config.Execute.timeout = int(timeout)
    if url is not None:
        config.CourseDirectory.db_url = url
    if isolation is not None:
        isolation.apply(config)
    return config


def run_nbgrader(command: str, root: Path, assignment: str, student: str | None = None,
                 config=None) -> dict:
    """Run nbgrader's `generate_assignment`, `autograde` or `generate_feedback` converter on one
    assignment (and student) of course `root`; nbgrader's result dict: success, log, error."""
    from nbgrader.converters import Autograde, GenerateAssignment, GenerateFeedback
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log
    from traitlets.config import LoggingConfigurable

    converters = {"generate_assignment": GenerateAssignment, "autograde": Autograde,
                  "generate_feedback": GenerateFeedback}
    if command not in converters:
        raise ValueError(f"command must be one of {sorted(converters)}, got {command!r}")
    config = config if config is not None else course_config(root)
    logger = logging.getLogger(f"minilm.grading.nbgrader.{command}")
    logger.propagate = False  # the log is captured and returned, not printed
    logger.setLevel(logging.INFO)
    parent = LoggingConfigurable(config=config, log=logger)
    coursedir = CourseDirectory(parent=parent, root=str(Path(root).resolve()))
    coursedir.assignment_id = assignment
    if student is not None:
        coursedir.student_id = student
    app = converters[command](coursedir=coursedir, parent=parent)
    app.force = True
    if command == "generate_assignment":
        app.create_assignment = True
    elif command == "autograde":
        app.create_student = True
    if command == "generate_feedback":
        app.update_config(_feedback_config())
    with warnings.catch_warnings():  # nbgrader's SQLAlchemy use warns on every submission
        warnings.simplefilter("ignore", category=_sqlalchemy_warning())
        return capture_log(app)


def _sqlalchemy_warning():
    from sqlalchemy.exc import SAWarning

    return SAWarning


def _feedback_config():
    from traitlets.config import Config

    config = Config()
    config.HTMLExporter.template_name = "feedback"  # as nbgrader's API does
    return config


def failure_reason(result: dict) -> str:
    """One line saying why an nbgrader run failed, from its log and traceback."""
    text = (result.get("log") or "") + "\n" + (result.get("error") or "")
    errors = [line.split("] ", 1)[-1] for line in text.splitlines()
              if line.startswith("[ERROR]") and "Please see the" not in line]
    tracebacks = re.findall(r"^\s*(\w+(?:\.\w+)*(?:Error|Exception)\b.*)$", text, re.MULTILINE)
    detail = tracebacks[-1].strip() if tracebacks else ""
    summary = next((e for e in errors if "error processing assignment" not in e.lower()
                    and not e.startswith("Traceback")), errors[0] if errors else "")
    return "; ".join(part for part in (summary, detail) if part)[:400] or "nbgrader failed"


def notes(log: str) -> list[str]:
    """The `minilm-grading:` notes of an nbgrader log (what the grader had to repair)."""
    return [line.split(NOTE, 1)[1].strip() for line in (log or "").splitlines() if NOTE in line]


@dataclass
class Scores:
    """One student's autograded scores, from the gradebook."""
    student: str
    score: float
    max_score: float
    cells: dict[str, tuple[float | None, float]] = field(default_factory=dict)  # id: (score, max)
    needs_manual_grade: bool = False


def scores(url: str, assignment: str, student: str) -> Scores | None:
    """The gradebook's scores of one submission; None if it has no submission."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(url) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return None
        cells = {}
        for notebook in submission.notebooks:
            for grade in sorted(notebook.grades, key=lambda g: g.name):
                cells[grade.name] = (grade.score if grade.auto_score is not None
                                     or grade.manual_score is not None else None,
                                     grade.max_score)
        return Scores(student, submission.score, submission.max_score, cells,
                      submission.needs_manual_grade)
