"""Classroom distribution: the student bundle (`minilm bundle`) holds no solution and no hidden
test, `minilm check` grades there with the visible tests of the release (and with
`--visible-only` in the repository), and nbgrader's exchange carries a release to a student and
the submission back into the instructor's submitted/ folder.

Each `minilm check` of chapter 1 takes 15-40 s on 2 cores: the file runs two.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from minilm.grading import course
from minilm.grading.check import VISIBLE_ONLY
from minilm.grading.config import RELEASE_DIRECTORY, SOURCE_DIRECTORY
from minilm.grading.course import find_source, list_assignments, read_notebook

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS, EXERCISES = ROOT / SOURCE_DIRECTORY, ROOT / RELEASE_DIRECTORY
NAME = "ch01_numba"
TIMEOUT = "60"  # seconds per cell: far above what a chapter 1 cell needs


def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines()}


def _cells(path: Path) -> list[str]:
    return ["".join(cell.get("source", "")) for cell in read_notebook(path)["cells"]]


def hidden_lines() -> set[str]:
    """The lines of the hidden-test regions of solutions/, less those that also stand outside
    them (a visible test may share a line) and the short ones (`else:`)."""
    hidden, elsewhere = set(), set()
    for path in sorted(SOLUTIONS.glob("*/*.ipynb")):
        for source in _cells(path):
            inside = False
            for line in source.splitlines():
                if "BEGIN HIDDEN TESTS" in line or "END HIDDEN TESTS" in line:
                    inside = "BEGIN" in line
                    continue
                (hidden if inside else elsewhere).add(line.strip())
    return {line for line in hidden - elsewhere if len(line) >= 12}


def bundle_text(path: Path) -> str:
    """A file's text; a notebook's is its cells' sources (in its JSON a line is a quoted string,
    with escapes)."""
    return "\n".join(_cells(path)) if path.suffix == ".ipynb" else path.read_text("utf-8")


@pytest.fixture
def bundle(tmp_path):
    from minilm.cli import main

    out = tmp_path / "bundle"
    assert main(["bundle", "--out", str(out)]) == 0
    return out


@pytest.fixture
def no_solutions(tmp_path, monkeypatch):
    """minilm as a student has it: no solutions/ (nor exercises/) next to the package."""
    monkeypatch.setattr(course, "repo_root", lambda: tmp_path / "site-packages")


def scores(out: str) -> dict[str, str]:
    """{test cell or "total": "score / points"} from what `minilm check` printed."""
    rows = [line.split() for line in out.splitlines() if line.startswith("  ")]
    return {row[0]: " ".join(row[1:4]) for row in rows if row[0] != "test"}


def solve(release: Path, out: Path, grade_id: str) -> Path:
    """A copy of the release notebook `release` at `out` with exercise `grade_id` written as a
    student writes it: the body of the solution in place of the release's stub."""
    import nbformat

    def cell(nb):
        return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                    == grade_id)

    solution = cell(nbformat.read(SOLUTIONS / NAME / f"{NAME}.ipynb", as_version=4)).source
    body = solution.split("### BEGIN SOLUTION\n")[1].split("### END SOLUTION")[0].rstrip(" ")
    nb = nbformat.read(release, as_version=4)
    cell(nb).source = cell(nb).source.split("# YOUR CODE HERE")[0].rstrip(" ") + body
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return out


# -- what students read --------------------------------------------------------------------------

INSTRUCTIONS = ("mkdir -p work && cp exercises/ch01_numba/ch01_numba.ipynb work/",
                "minilm check work/ch01_numba.ipynb", VISIBLE_ONLY, "--visible-only",
                "nbgrader fetch_assignment ch01_numba", "nbgrader submit ch01_numba")


@pytest.mark.parametrize("where", ["README.md", "exercises/README.md", "course/00_welcome.ipynb"])
def test_students_read_the_same_instructions(where):
    path = ROOT / where
    text = " ".join(bundle_text(path).split())
    missing = [words for words in INSTRUCTIONS if words not in text]
    assert not missing, f"{where} does not say {missing}"


# -- the bundle ----------------------------------------------------------------------------------

def test_bundle_holds_the_course_and_release_and_no_solutions(bundle):
    from minilm.cli import main

    assert sorted(p.name for p in bundle.iterdir()) == ["README.md", "course", "exercises"]
    files = [p for p in bundle.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert not names & {"gradebook.db", "nbgrader_config.py"}, names
    assert not any(SOURCE_DIRECTORY in p.relative_to(bundle).parts for p in files)
    assert sorted(p.name for p in (bundle / "course").glob("*.ipynb")) == \
        sorted(p.name for p in (ROOT / "course").glob("*.ipynb"))
    assert list_assignments(bundle / "exercises") == list_assignments(SOLUTIONS)

    secrets = hidden_lines()
    assert len(secrets) > 100  # the hidden tests of all eleven assignments
    for path in files:
        text = bundle_text(path)
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS"):
            assert marker not in text, f"{path}: {marker}"
        leaked = sorted(_lines(text) & secrets)
        assert not leaked, f"{path} holds hidden-test lines: {leaked[:3]}"

    readme = " ".join((bundle / "README.md").read_text("utf-8").split())
    for words in ("pip install", "jupyter lab course/00_welcome.ipynb", *INSTRUCTIONS):
        assert words in readme, words
    assert main(["bundle", "--out", str(bundle)]) == 2  # not into a folder that has files


def test_check_in_a_bundle_grades_with_the_visible_tests(bundle, no_solutions, capsys):
    """A student's copy in work/ of a bundle, exercise 2 written: its visible points, and the
    "visible tests only" line before the table."""
    from minilm.cli import main

    mine = solve(bundle / "exercises" / NAME / f"{NAME}.ipynb", bundle / "work" / f"{NAME}.ipynb",
                 "ex2_gelu")
    assert main(["check", str(mine), "--timeout", TIMEOUT]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert VISIBLE_ONLY in lines, out
    assert lines.index(VISIBLE_ONLY) < next(i for i, x in enumerate(lines) if "test cell" in x)
    assert scores(out) == {"ex1_softmax_tests": "0 / 4", "ex2_gelu_tests": "3 / 3",
                           "ex3_first_and_later_tests": "0 / 3", "total": "3 / 10"}, out
    assert f"visible tests of {bundle / 'exercises'}" in lines[-1], out


def test_visible_only_in_the_repository(tmp_path, capsys):
    """`--visible-only` grades with exercises/ although solutions/ is there."""
    from minilm.cli import main

    mine = tmp_path / "mine.ipynb"  # outside the repository: found in its exercises/
    shutil.copyfile(EXERCISES / NAME / f"{NAME}.ipynb", mine)
    assert main(["check", str(mine), "--visible-only", "--timeout", TIMEOUT]) == 0
    out = capsys.readouterr().out
    assert VISIBLE_ONLY in out and f"visible tests of {EXERCISES}" in out, out
    assert scores(out)["total"] == "0 / 10", out


def test_where_the_tests_come_from(tmp_path, monkeypatch, capsys):
    from minilm.cli import main

    release = tmp_path / "class" / "exercises"
    shutil.copytree(EXERCISES / NAME, release / NAME)
    mine = release.parent / "work" / f"{NAME}.ipynb"
    mine.parent.mkdir()
    assert find_source(mine) == course.Source(SOLUTIONS, True)  # the repository: hidden tests
    assert find_source(mine, visible_only=True) == course.Source(release, False)
    assert find_source(mine, source=SOLUTIONS) == course.Source(SOLUTIONS, True)
    assert find_source(mine, source=release) == course.Source(release, False)
    with pytest.raises(ValueError, match="--visible-only: --source"):
        find_source(mine, source=SOLUTIONS, visible_only=True)

    monkeypatch.setattr(course, "repo_root", lambda: tmp_path / "site-packages")
    assert find_source(release / NAME / f"{NAME}.ipynb") == course.Source(release, False)
    assert find_source(mine) == course.Source(release, False)
    lost = tmp_path / "elsewhere" / f"{NAME}.ipynb"
    lost.parent.mkdir()
    shutil.copyfile(EXERCISES / NAME / f"{NAME}.ipynb", lost)
    assert main(["check", str(lost)]) == 2
    assert "no released exercises" in capsys.readouterr().err


# -- nbgrader's exchange -------------------------------------------------------------------------

def test_nbgrader_exchange_round_trip(tmp_path):
    """release_assignment -> fetch_assignment -> submit -> collect, as README's "Exercises and
    grading" describes, through nbgrader's own exchange classes (what its commands run): the
    student's notebook lands in submitted/STUDENT/NAME/, where `minilm grade` reads it."""
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange.default import (
        ExchangeCollect,
        ExchangeFetchAssignment,
        ExchangeReleaseAssignment,
        ExchangeSubmit,
    )
    from nbgrader.utils import get_username
    from traitlets.config import Config

    from minilm.grading.config import configure

    root, student = tmp_path / "course", tmp_path / "student"
    shutil.copytree(EXERCISES / NAME, root / RELEASE_DIRECTORY / NAME)
    student.mkdir()

    def run(step):
        config = configure(Config())  # the course settings, as nbgrader_config.py has them
        config.CourseDirectory.root = str(root)
        config.CourseDirectory.course_id = "minilm"
        config.Exchange.root = str(tmp_path / "exchange")
        config.Exchange.cache = str(tmp_path / "cache")  # the student's; default: Jupyter's
        config.Exchange.assignment_dir = str(student)  # where the student runs nbgrader
        coursedir = CourseDirectory(config=config)
        coursedir.assignment_id = NAME
        step(coursedir=coursedir, authenticator=Authenticator(config=config),
             config=config).start()

    run(ExchangeReleaseAssignment)  # instructor
    run(ExchangeFetchAssignment)  # student
    fetched = student / NAME / f"{NAME}.ipynb"
    assert fetched.read_bytes() == (EXERCISES / NAME / f"{NAME}.ipynb").read_bytes()
    solve(fetched, fetched, "ex2_gelu")
    run(ExchangeSubmit)  # student
    run(ExchangeCollect)  # instructor
    collected = root / "submitted" / get_username() / NAME / f"{NAME}.ipynb"
    assert collected.read_bytes() == fetched.read_bytes()
