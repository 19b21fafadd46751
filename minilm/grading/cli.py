"""The grading commands of `minilm` (registered by `minilm.cli`):

    minilm check exercises/ch03_attention/ch03_attention.ipynb   # a student's self-check
    minilm grade ch03_attention --workers 2 [--course DIR]        # autograde a whole class
    minilm exercises [NAME ...] [--check]                         # exercises/ from solutions/

`check` exits 0 whatever the score, and 2 only for a file it cannot grade. `grade` exits 0 when
every student has a recorded score or a recorded error. `exercises --check` exits 1 when the
committed exercises/ differs from what nbgrader generates from solutions/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def add_grading_parsers(subparsers) -> None:
    """Register `minilm check`, `minilm grade` and `minilm exercises`."""
    from ..cli import positive_int  # (minilm.cli is loaded: it is what calls this)

    check = subparsers.add_parser(
        "check", help="self-check an exercise notebook with the hidden tests",
        description="Autograde one exercise notebook locally with the hidden tests (nbgrader "
                    "in a temporary folder) and print the score of every test cell and the "
                    "total. Exit code 0 whatever the score; 2 for a file that cannot be graded.")
    check.add_argument("notebook", help="the notebook, e.g. exercises/ch01_numba/ch01_numba.ipynb")
    check.add_argument("--assignment", metavar="NAME",
                       help="grade it as this assignment (default: found from its cells)")
    check.add_argument("--source", metavar="DIR",
                       help="the nbgrader source directory (default: the repository's "
                            "solutions/)")
    check.add_argument("--timeout", type=_seconds, metavar="S",
                       help="seconds per cell (default: the course's 120)")
    check.set_defaults(run=cmd_check)

    grade = subparsers.add_parser(
        "grade", help="autograde every submission of an assignment in parallel (instructors)",
        description="Autograde every submitted/STUDENT/ASSIGNMENT/ of an nbgrader course "
                    "directory with nbgrader, in N worker processes sharing the gradebook. "
                    "Prints one line per student and a summary, writes reports/ASSIGNMENT.csv.")
    grade.add_argument("assignment", help="the assignment, e.g. ch01_numba")
    grade.add_argument("--workers", type=positive_int, default=1, metavar="N",
                       help="worker processes (default 1)")
    grade.add_argument("--course", default=".", metavar="DIR",
                       help="the course directory (default: the current one)")
    grade.add_argument("--timeout", type=_seconds, metavar="S",
                       help="seconds per cell (default: from the course's nbgrader_config.py)")
    grade.add_argument("--student", action="append", metavar="ID",
                       help="grade only this student (repeatable)")
    grade.set_defaults(run=cmd_grade)

    exercises = subparsers.add_parser(
        "exercises", help="regenerate exercises/ from solutions/ with nbgrader",
        description="Run nbgrader generate_assignment on solutions/ in a temporary course "
                    "directory and copy the release into exercises/ (never edit it by hand).")
    exercises.add_argument("names", nargs="*", metavar="NAME",
                           help="assignments (default: all in solutions/)")
    exercises.add_argument("--check", action="store_true",
                           help="only compare with the committed exercises/; exit 1 if it differs")
    exercises.set_defaults(run=cmd_exercises)


def cmd_check(args) -> int:
    from .check import check_notebook, format_check

    check = check_notebook(args.notebook, source=args.source, assignment=args.assignment,
                           timeout=args.timeout)
    print(format_check(check))
    return 1 if check.error else 0


def cmd_grade(args) -> int:
    from .parallel import grade_assignment

    def log(line):
        print(line, flush=True)

    report = grade_assignment(args.course, args.assignment, workers=args.workers,
                              timeout=args.timeout, students=args.student, log=log)
    print(report.summary())
    print(f"wrote {Path(args.course) / 'reports' / (args.assignment + '.csv')}")
    for problem in report.problems:
        print(f"gradebook problem: {problem}", file=sys.stderr)
    return 1 if report.problems else 0


def cmd_exercises(args) -> int:
    from .course import default_source, repo_root
    from .release import compare_release, generate_release

    source, release = default_source(), repo_root() / "exercises"
    if args.check:
        problems = compare_release(source, release, args.names or None)
        for problem in problems:
            print(f"exercises/{problem}")
        print("exercises/ is up to date" if not problems else
              "exercises/ differs from solutions/: run `minilm exercises` to regenerate it")
        return 1 if problems else 0
    names = generate_release(source, release, args.names or None)
    print(f"generated exercises/ for {', '.join(names) or 'no assignments'}")
    return 0
