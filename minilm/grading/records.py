"""What `minilm grade` keeps of each student: their result, its record, the class table.

`StudentResult` is one student's outcome. As each student is graded, `write_record` commits it to
`reports/ASSIGNMENT/STUDENT.json` with the sha256 of the submitted and of the source notebook, and
`write_csv` rewrites `reports/ASSIGNMENT.csv` (both written whole: a killed run leaves the old or
the new file). `kept_results` reads back the records that still hold for a rerun;
`check_gradebook` checks the gradebook against what was reported.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sqlite3
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

CSV_COLUMNS = ["student", "status", "score", "max_score", "seconds", "error", "notes"]


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
    kept: bool = False  # read from an earlier run's record, not graded again

    def line(self) -> str:
        if self.status == "graded":
            text = f"{self.student}: {self.score:g} / {self.max_score:g}"
        else:
            text = f"{self.student}: ERROR {self.error}"
        text += " (kept from an earlier run)" if self.kept else ""
        return text + "".join(f"\n    note: {note}" for note in self.notes)



def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes; "" when there is no such file."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def student_report(root: Path, assignment: str, student: str, suffix: str) -> Path:
    """reports/ASSIGNMENT/STUDENT.json (the record), STUDENT.log (nbgrader's log)."""
    return Path(root) / "reports" / assignment / f"{student}{suffix}"


def write_record(path: Path, result: StudentResult, fingerprint: dict) -> None:
    """Commit one student's result, with the `fingerprint` of what was graded (sha256s)."""
    record = {key: value for key, value in asdict(result).items() if key != "kept"}
    _write_atomically(path, json.dumps({**record, **fingerprint}, indent=1))


def read_record(path: Path, fingerprint: dict) -> StudentResult | None:
    """The result recorded at `path` when its fingerprint is `fingerprint` (the same notebooks
    were graded), marked kept; None when there is none, it is damaged, or it is stale."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if any(record.get(key) != value for key, value in fingerprint.items()):
            return None
        return StudentResult(**{item.name: record[item.name] for item in fields(StudentResult)
                                if item.name != "kept"}, kept=True)
    except (OSError, ValueError, KeyError, TypeError):  # no record, or not one of ours
        return None


def kept_results(root: Path, url: str, assignment: str, fingerprints: dict) -> dict:
    """{student: result} of the earlier runs that still hold: a record with the same fingerprint
    and, for a score, that score in the gradebook (exactly once)."""
    in_gradebook = gradebook_scores(url, assignment)
    kept = {}
    for student, fingerprint in fingerprints.items():
        result = read_record(student_report(root, assignment, student, ".json"), fingerprint)
        if result and (result.status != "graded" or in_gradebook.get(student) == [result.score]):
            kept[student] = result
    return kept


def _write_atomically(path: Path, text: str) -> None:
    """Write `path` so that a reader (or a killed run) finds the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def gradebook_scores(url: str, assignment: str) -> dict[str, list[float]]:
    """{student: the score of each of their submissions} of `assignment` in the gradebook."""
    from nbgrader.api import Gradebook

    found = {}
    with Gradebook(url) as gradebook:
        for submission in gradebook.assignment_submissions(assignment):
            found.setdefault(submission.student_id, []).append(submission.score)
    return found


def check_gradebook(url: str, assignment: str, results) -> list[str]:
    """What is wrong with the gradebook after grading: SQLite's integrity check, and every
    graded student there exactly once with the score that was reported."""
    problems = []
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///"):].split("?")[0]) as db:
            verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            problems.append(f"PRAGMA integrity_check: {verdict}")
    found = gradebook_scores(url, assignment)
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
    """The table of `results`, one row per student (written whole: see _write_atomically)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, CSV_COLUMNS)
    writer.writeheader()
    for result in results:
        row = {column: getattr(result, column) for column in CSV_COLUMNS}
        row["notes"] = "; ".join(result.notes)
        row["seconds"] = f"{result.seconds:.1f}"
        writer.writerow(row)
    _write_atomically(path, text.getvalue())
