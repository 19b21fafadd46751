"""Grading: the instructor workflow end to end, bad submissions, `minilm check`, parallel grading.

Most tests use the tiny fixture assignment in tests/fixtures/grading/tiny (three exercises worth
2, 1 and 4 points, so every partial total names exactly which exercises passed) with short cell
timeouts; the instructor workflow uses a real course assignment through the `nbgrader` command.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from minilm.grading.course import (
    UnusableNotebook,
    identify_assignment,
    list_assignments,
    read_notebook,
)
from minilm.grading.sandbox import sandbox_problem

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "grading"
TINY = FIXTURES / "tiny" / "tiny.ipynb"
TIMEOUT = 20  # seconds per cell in these tests: far above what a fixture cell needs
REAL = "ch01_numba"  # the real assignment of the instructor workflow
# `minilm grade` refuses where no sandbox can run: there the tests grade with --unsafe
SANDBOX_FLAGS = [] if sandbox_problem() is None else ["--unsafe"]


# -- building submissions -------------------------------------------------------------------------

def _cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _drop(nb, *grade_ids):
    nb.cells = [c for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") not in grade_ids]


def _stub(nb, grade_id):
    cell = _cell(nb, grade_id)
    head = cell.source.split("### BEGIN SOLUTION")[0]
    cell.source = head + "# YOUR CODE HERE\n    raise NotImplementedError()"


def _body(nb, grade_id, body):
    """Replace the solution of `grade_id` by `body` (indented lines of the function)."""
    cell = _cell(nb, grade_id)
    head = cell.source.split("### BEGIN SOLUTION")[0].rstrip(" ")
    cell.source = head + body


def solution():
    return nbformat.read(TINY, as_version=4)


def other_assignment(nb):
    """The notebook of another assignment ("other"): other exercise ids and function names."""
    other = copy.deepcopy(nb)
    for cell in other.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") or meta.get("solution"):
            meta["grade_id"] = meta["grade_id"].replace("_", "_other_", 1)
            cell.source = re.sub(r"(?<![.\w])(softmax|row_sum|gelu)\(", r"my_\1(", cell.source)
    return other


def submissions(release) -> dict:
    """{student: (notebook or raw text, expected score or "error")}: the bad-submission cases."""
    cases = {}
    cases["solved"] = (solution(), 7)
    cases["untouched"] = (copy.deepcopy(release), 0)
    partial = copy.deepcopy(release)  # exercises 1 and 3 solved: 2 + 4 points
    for grade_id in ("ex1_softmax", "ex3_gelu"):
        _cell(partial, grade_id).source = _cell(solution(), grade_id).source
    cases["partial"] = (partial, 6)

    nb = solution()  # a Python infinite loop: interrupted at the timeout, exercise 1 lost
    _body(nb, "ex1_softmax", "    while True:\n        pass")
    cases["python_loop"] = (nb, 5)
    nb = solution()  # a loop inside @njit ignores the interrupt: kernel restarted, ex. 2 lost
    _body(nb, "ex2_row_sum", "    i = 0\n    while True:\n        i += 1\n    return x[0]")
    cases["njit_loop"] = (nb, 6)
    nb = solution()  # the kernel dies in exercise 1's test
    _body(nb, "ex1_softmax", "    import os\n    os._exit(1)")
    cases["kernel_dies"] = (nb, 5)
    nb = solution()  # an exception at import in exercise 1's cell; the setup cell is broken too
    cell = _cell(nb, "ex1_softmax")
    cell.source = "import not_a_module_at_all\n" + cell.source
    _cell(nb, "setup").source = "import not_a_module_either\n"
    cases["import_error"] = (nb, 5)

    nb = solution()  # exercise 2 wrong, and its test cell emptied; other test metadata edited
    _body(nb, "ex2_row_sum", "    return np.zeros(x.shape[0])")
    _cell(nb, "ex2_row_sum_tests").source = "pass  # all good"
    _cell(nb, "ex1_softmax_tests").metadata.nbgrader["points"] = 100
    _cell(nb, "ex3_gelu_tests").metadata.nbgrader["grade"] = False
    cases["tampered"] = (nb, 6)
    nb = solution()  # setup, exercise 2 (solution + test) and exercise 3's test deleted
    _drop(nb, "setup", "ex2_row_sum", "ex2_row_sum_tests", "ex3_gelu_tests")
    cases["deleted"] = (nb, 6)

    nb = solution()  # megabytes of printed output, and still correct
    _cell(nb, "ex1_softmax").source += (
        "\n\nprint('x' * 5_000_000)\nfor i in range(100_000):\n    print(i)")
    cases["huge_output"] = (nb, 7)
    cases["other_assignment"] = (other_assignment(solution()), 0)
    text = json.dumps(nbformat.writes(solution()))[: 3000]
    cases["invalid_json"] = (text, "error")
    return cases


def write_submission(root: Path, assignment: str, student: str, content) -> Path:
    path = root / "submitted" / student / assignment / f"{assignment}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        nbformat.write(content, path)
    return path


@pytest.fixture(scope="module")
def tiny_course(tmp_path_factory):
    """A course directory with the tiny assignment (and "other") generated, and its release."""
    from minilm.grading.release import generate_into, make_course

    root = tmp_path_factory.mktemp("course")
    make_course(root, FIXTURES, ["tiny"], timeout=TIMEOUT)
    other = root / "solutions" / "other"
    other.mkdir()
    nbformat.write(other_assignment(solution()), other / "other.ipynb")
    generate_into(root, ["tiny", "other"])
    release = nbformat.read(root / "exercises" / "tiny" / "tiny.ipynb", as_version=4)
    return root, release


@pytest.fixture(scope="module")
def graded(tiny_course):
    """Every bad-submission case graded at once by `minilm grade`'s engine, 2 workers."""
    from minilm.grading.parallel import grade_assignment

    root, release = tiny_course
    cases = submissions(release)
    for student, (content, _) in cases.items():
        write_submission(root, "tiny", student, content)
    lines = []
    report = grade_assignment(root, "tiny", workers=2, timeout=TIMEOUT, log=lines.append)
    return root, cases, report, {r.student: r for r in report.results}, lines


# -- bad submissions ------------------------------------------------------------------------------

CASES = ["solved", "untouched", "partial", "python_loop", "njit_loop", "kernel_dies",
         "import_error", "tampered", "deleted", "huge_output", "other_assignment"]


@pytest.mark.parametrize("student", CASES)
def test_submission_gets_its_score(graded, student):
    _, cases, _, results, _ = graded
    result = results[student]
    assert result.status == "graded", result.error
    assert (result.score, result.max_score) == (cases[student][1], 7), result.notes


def test_invalid_json_is_a_clear_error_and_grading_goes_on(graded):
    _, _, report, results, lines = graded
    result = results["invalid_json"]
    assert result.status == "error" and "not valid JSON" in result.error
    assert any(line.startswith("invalid_json: ERROR") for line in lines)
    assert len(report.results) == len(CASES) + 1


@pytest.mark.parametrize("student, words", [
    ("njit_loop", "did not respond to the interrupt"),
    ("kernel_dies", "kernel died"),
    ("python_loop", "was interrupted"),
    ("tampered", "restored ex2_row_sum_tests (edited"),
    ("tampered", "restored the nbgrader metadata (points) of ex1_softmax_tests"),
    ("deleted", "re-added ex3_gelu_tests"),
    ("deleted", "re-added setup"),
    ("huge_output", "output of ex1_softmax cut"),
    ("other_assignment", "not a notebook of tiny"),
])
def test_the_grader_says_what_it_repaired(graded, student, words):
    notes = graded[3][student].notes
    assert any(words in note for note in notes), notes


def test_untouched_hidden_test_cells_raise_no_tampering_note(graded):
    assert graded[3]["solved"].notes == [] and graded[3]["partial"].notes == []


def test_graded_notebook_keeps_the_error_and_little_output(graded):
    root = graded[0]
    nb = json.loads((root / "autograded/njit_loop/tiny/tiny.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id")
               == "ex2_row_sum_tests" for o in c["outputs"]]
    assert any(o.get("ename") == "CellTimeoutError" for o in outputs)
    assert (root / "autograded/huge_output/tiny/tiny.ipynb").stat().st_size < 1_000_000


def test_parallel_grading_keeps_the_gradebook_whole(graded):
    root, cases, report, results, _ = graded
    assert report.problems == []
    with sqlite3.connect(root / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT student_id, COUNT(*) FROM submitted_assignment "
                          "GROUP BY student_id").fetchall()
    assert sorted(rows) == sorted((student, 1) for student in cases)
    table = list(csv.DictReader(open(root / "reports" / "tiny.csv", encoding="utf-8")))
    assert {row["student"]: row["status"] for row in table} == {
        r.student: r.status for r in report.results}
    assert "submissions/minute" in report.summary()


# -- minilm check ---------------------------------------------------------------------------------

def minilm(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "minilm", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def test_check_full_marks_zero_and_partial(tiny_course, tmp_path, capsys):
    from minilm.cli import main

    _, release = tiny_course
    cases = submissions(release)
    expected = {"solved": "7 / 7", "untouched": "0 / 7", "partial": "6 / 7"}
    for student, total in expected.items():
        # a file name that names no assignment: found from its cells
        path = tmp_path / f"Copy of {student}.ipynb"
        nbformat.write(cases[student][0], path)
        assert main(["check", str(path), "--source", str(FIXTURES),
                     "--timeout", str(TIMEOUT)]) == 0
        out = capsys.readouterr().out
        total_line = next(line for line in out.splitlines() if line.strip().startswith("total"))
        assert total_line.split()[1:] == total.split(), out
    assert "ex2_row_sum_tests  0 / 1" in out and "NotImplementedError" in out


@pytest.mark.parametrize("content, words", [
    (None, "no such file"),
    ("{ not json", "not valid JSON"),
    ('{"a": 1}', "not a Jupyter notebook"),
    ("other", "not a notebook of any assignment"),
])
def test_check_unusable_file_exits_2_with_one_line(tmp_path, content, words):
    path = tmp_path / "tiny.ipynb"
    if content == "other":
        nb = other_assignment(solution())
        path = tmp_path / "mine.ipynb"
        nbformat.write(nb, path)
    elif content is not None:
        path.write_text(content)
    result = minilm("check", str(path), "--source", str(FIXTURES))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr


@pytest.mark.parametrize("command", ["check", "grade", "exercises"])
def test_help(command):
    result = minilm(command, "--help")
    assert result.returncode == 0 and "usage" in result.stdout


def test_check_without_source_says_so(tmp_path):
    result = minilm("check", str(TINY), "--source", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_read_and_identify(tmp_path):
    nb = read_notebook(TINY)
    assert identify_assignment(nb, FIXTURES, "whatever").assignment == "tiny"
    assert list_assignments(FIXTURES) == ["tiny"]
    bad = tmp_path / "x.ipynb"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UnusableNotebook, match="not a text file"):
        read_notebook(bad)


# -- the instructor workflow, with the real nbgrader command --------------------------------------

def nbgrader(root: Path, *args):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root,
                            capture_output=True, text=True, timeout=900)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "solutions" / REAL / f"{REAL}.ipynb").exists(),
                    reason=f"solutions/{REAL} is not written yet")
def test_instructor_workflow(tmp_path):
    """generate -> three students -> nbgrader autograde -> gradebook -> feedback -> export."""
    from nbgrader.api import Gradebook

    root = tmp_path / "course"
    root.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", root)
    shutil.copytree(ROOT / "solutions" / REAL, root / "solutions" / REAL)
    code, log = nbgrader(root, "generate_assignment", REAL, "--force")
    assert code == 0, log
    release = nbformat.read(root / "exercises" / REAL / f"{REAL}.ipynb", as_version=4)
    source = nbformat.read(root / "solutions" / REAL / f"{REAL}.ipynb", as_version=4)
    tests = [c.metadata.nbgrader for c in source.cells
             if c.metadata.get("nbgrader", {}).get("grade") and not
             c.metadata.nbgrader.get("solution")]
    solutions = [c.metadata.nbgrader["grade_id"] for c in source.cells
                 if c.metadata.get("nbgrader", {}).get("solution")]
    total = sum(t["points"] for t in tests)
    partial = copy.deepcopy(release)  # the first exercise solved
    _cell(partial, solutions[0]).source = _cell(source, solutions[0]).source
    first = next(t for t in tests if t["grade_id"].startswith(solutions[0]))["points"]
    for student, nb in {"ada": source, "bob": release, "cyd": partial}.items():
        write_submission(root, REAL, student, nb)

    code, log = nbgrader(root, "autograde", REAL, "--force")
    assert code == 0, log
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        got = {s.student_id: (s.score, s.max_score, s.needs_manual_grade)
               for s in gradebook.assignment_submissions(REAL)}
    assert got == {"ada": (total, total, False), "bob": (0, total, False),
                   "cyd": (first, total, False)}

    code, log = nbgrader(root, "generate_feedback", REAL, "--force")
    assert code == 0, log
    for student in ("ada", "bob", "cyd"):
        html = (root / "feedback" / student / REAL / f"{REAL}.html").read_text()
        assert "Score:" in html or "score" in html.lower()
    code, log = nbgrader(root, "export", "--to", str(root / "grades.csv"))
    assert code == 0, log
    rows = {r["student_id"]: float(r["score"])
            for r in csv.DictReader(open(root / "grades.csv", encoding="utf-8"))}
    assert rows == {"ada": total, "bob": 0, "cyd": first}


@pytest.mark.slow
def test_grade_command_end_to_end(tiny_course, tmp_path):
    """`minilm grade` as a command: a line per student, a summary, exit 0."""
    root, release = tiny_course
    course = tmp_path / "class"
    shutil.copytree(root / "solutions", course / "solutions")
    shutil.copy(root / "nbgrader_config.py", course)
    for student, nb in {"s1": solution(), "s2": release}.items():
        write_submission(course, "tiny", student, nb)
    env = {**os.environ}
    result = subprocess.run([sys.executable, "-m", "minilm", "grade", "tiny", "--workers", "2",
                             "--course", str(course), "--timeout", str(TIMEOUT), *SANDBOX_FLAGS],
                            capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "s1: 7 / 7" in result.stdout and "s2: 0 / 7" in result.stdout
    assert "submissions/minute" in result.stdout
