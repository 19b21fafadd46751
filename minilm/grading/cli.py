"""The grading commands of `minilm` (registered by `minilm.cli`):

    minilm check work/ch03_attention.ipynb [--visible-only]      # a student's self-check
    minilm grade ch03_attention --workers 2 [--course DIR]        # autograde a whole class
    minilm exercises [NAME ...] [--check]                         # exercises/ from solutions/
    minilm bundle --out DIR                                       # what a class gets

`check` exits 0 whatever the score, and 2 only for a file it cannot grade (or no tests to grade
it with). `grade` exits 0 when every student has a recorded score or a recorded error.
`exercises --check` exits 1 when the committed exercises/ differs from what nbgrader generates
from solutions/.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def _add_isolation_arguments(parser, *, unsafe: bool) -> None:
    """The sandbox's limits (and, for instructors, --unsafe) on a grading command."""
    from ..cli import positive_int
    from .config import NOTEBOOK_TIMEOUT
    from .sandbox import Limits

    group = parser.add_argument_group("the sandbox each notebook runs in (README: Grading you "
                                      "can trust)")
    if unsafe:
        group.add_argument("--unsafe", action="store_true",
                           help="run the students' code without a sandbox, as you, where none "
                                "can run (macOS, Windows): it can then read and change "
                                "everything you can")
    defaults = Limits()
    group.add_argument("--memory", type=positive_int, metavar="MIB",
                       help=f"memory of each process (default {defaults.memory_mib} MiB)")
    group.add_argument("--processes", type=positive_int, metavar="N",
                       help=f"processes and threads it may add (default {defaults.processes})")
    group.add_argument("--disk", type=positive_int, metavar="MIB",
                       help=f"writable space and largest file (default {defaults.disk_mib} MiB)")
    group.add_argument("--notebook-timeout", type=_seconds, metavar="S",
                       help=f"seconds for the whole notebook (default {NOTEBOOK_TIMEOUT})")


def _isolation(args, sandbox: bool | None):
    from .config import Isolation
    from .sandbox import Limits

    given = {name: value for name, value in [("memory_mib", args.memory),
                                             ("processes", args.processes),
                                             ("disk_mib", args.disk)] if value is not None}
    return Isolation(sandbox=False if getattr(args, "unsafe", False) else sandbox,
                     limits=Limits(**given) if given else None,
                     notebook_timeout=args.notebook_timeout)


def add_grading_parsers(subparsers) -> None:
    """Register `minilm check`, `minilm grade`, `minilm exercises` and `minilm bundle`."""
    from ..cli import positive_int  # (minilm.cli is loaded: it is what calls this)

    check = subparsers.add_parser(
        "check", help="self-check an exercise notebook (hidden tests where solutions/ is at hand)",
        description="Autograde one exercise notebook locally (nbgrader in a temporary folder) "
                    "and print the score of every test cell and the total: with the hidden tests "
                    "of the repository's solutions/, or where there is none (a student bundle) "
                    "with the visible tests of the released notebook, which it then says. Exit "
                    "code 0 whatever the score; 2 for a file that cannot be graded.")
    check.add_argument("notebook", help="the notebook, e.g. work/ch01_numba.ipynb")
    check.add_argument("--assignment", metavar="NAME",
                       help="grade it as this assignment (default: found from its cells)")
    check.add_argument("--source", metavar="DIR",
                       help="a folder of assignments NAME/NAME.ipynb: an nbgrader source "
                            "directory (hidden tests) or released ones (visible tests only); "
                            "default: the repository's solutions/, else the exercises/ in or "
                            "above the notebook's folder")
    check.add_argument("--visible-only", action="store_true",
                       help="grade with the released notebook's visible tests, as a student "
                            "without solutions/ does")
    check.add_argument("--timeout", type=_seconds, metavar="S",
                       help="seconds per cell (default: the course's 120)")
    _add_isolation_arguments(check, unsafe=False)
    check.set_defaults(run=cmd_check)

    grade = subparsers.add_parser(
        "grade", help="autograde every submission of an assignment in parallel (instructors)",
        description="Autograde every submitted/STUDENT/ASSIGNMENT/ of an nbgrader course "
                    "directory with nbgrader, in N worker processes sharing the gradebook. "
                    "Prints one line per student and a summary, writes reports/ASSIGNMENT.csv "
                    "and a record per student as each is graded. A rerun (after Ctrl-C, say) "
                    "keeps the students whose submission is unchanged since their record.")
    grade.add_argument("assignment", help="the assignment, e.g. ch01_numba")
    grade.add_argument("--workers", type=positive_int, default=1, metavar="N",
                       help="worker processes (default 1)")
    grade.add_argument("--course", default=".", metavar="DIR",
                       help="the course directory (default: the current one)")
    grade.add_argument("--timeout", type=_seconds, metavar="S",
                       help="seconds per cell (default: from the course's nbgrader_config.py)")
    grade.add_argument("--student", action="append", metavar="ID",
                       help="grade only this student (repeatable)")
    grade.add_argument("--fresh", action="store_true",
                       help="grade everyone again (default: keep the results of earlier runs "
                            "whose submitted and source notebooks are unchanged)")
    _add_isolation_arguments(grade, unsafe=True)
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

    bundle = subparsers.add_parser(
        "bundle", help="write the student bundle: course and exercises, no solutions (instructors)",
        description="Write what a class gets into a new folder: the chapter notebooks of course/, "
                    "the released exercises/ (no solutions, no hidden tests) and a README for "
                    "students; nothing of solutions/, no gradebook, no nbgrader_config.py.")
    bundle.add_argument("--out", required=True, metavar="DIR",
                        help="the folder to write (new, or empty)")
    bundle.set_defaults(run=cmd_bundle)


def cmd_check(args) -> int:
    from .check import check_notebook, format_check

    check = check_notebook(args.notebook, source=args.source, assignment=args.assignment,
                           timeout=args.timeout, visible_only=args.visible_only,
                           isolation=_isolation(args, sandbox=None))
    print(format_check(check))
    return 1 if check.error else 0


def cmd_grade(args) -> int:
    from .config import SandboxUnavailable
    from .parallel import grade_assignment

    def log(line):
        print(line, flush=True)

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stopped like Ctrl-C: resumable
    try:
        report = grade_assignment(args.course, args.assignment, workers=args.workers,
                                  timeout=args.timeout, students=args.student, log=log,
                                  fresh=args.fresh, isolation=_isolation(args, sandbox=True))
    except SandboxUnavailable as error:
        print(f"minilm grade: no sandbox: {error}", file=sys.stderr)
        return 2
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


def cmd_bundle(args) -> int:
    from .bundle import write_bundle

    files = write_bundle(args.out)
    print(f"wrote {len(files)} files into {args.out}: course/, exercises/, README.md")
    return 0
