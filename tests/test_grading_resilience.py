"""Grading that survives and reports: results committed per student and resumed after a killed
or interrupted `minilm grade`, a line for every student even when grading crashes twice, and the
submissions nbgrader alone cannot grade (format 3, a duplicated grade id, a test cell above its
solution); feedback that shows each failed check but not the hidden tests.

They use the tiny fixture assignment of test_grading (three exercises worth 2, 1 and 4 points, so
a total names the exercises that passed) with its short cell timeout.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from html import unescape
from pathlib import Path

import nbformat
import pytest
from test_grading import (
    FIXTURES,
    SANDBOX_FLAGS,
    TIMEOUT,
    _body,
    _cell,
    solution,
    write_submission,
)

from minilm.grading.course import read_notebook

HIDDEN_LINES = ["x = rng.standard_normal((5, 7)).astype(np.float32)",
                "x = rng.standard_normal(11).astype(np.float32)"]  # in the fixture's hidden tests


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course directory with the tiny assignment generated."""
    from minilm.grading.release import generate_into, make_course

    root = make_course(tmp_path_factory.mktemp("course"), FIXTURES, ["tiny"], timeout=TIMEOUT)
    generate_into(root, ["tiny"])
    return root


def submissions() -> dict:
    """{student: (notebook, expected score)}: what nbgrader alone cannot grade, and a notebook
    that fails hidden tests (for the feedback)."""
    cases = {"v3": (nbformat.convert(solution(), 3), 7)}

    nb = solution()  # a copy of exercise 1's test at the end, after a broken softmax
    broken = nbformat.v4.new_code_cell("def softmax(x):\n    return x")
    copied = copy.deepcopy(_cell(nb, "ex1_softmax_tests"))
    copied["id"] = "copied-test"
    nb.cells += [broken, copied]
    cases["duplicated"] = (nb, 7)  # graded in its place: before the broken softmax

    nb = solution()  # exercise 1's test dragged above its solution: it ran before softmax existed
    test = _cell(nb, "ex1_softmax_tests")
    nb.cells.remove(test)
    nb.cells.insert(nb.cells.index(_cell(nb, "ex1_softmax")), test)
    cases["moved"] = (nb, 7)

    nb = solution()  # softmax right only for the visible test's shape; gelu wrong
    _body(nb, "ex1_softmax", "    if x.shape != (2, 3):\n        return x\n"
                             "    e = np.exp(x - x.max(axis=-1, keepdims=True))\n"
                             "    return e / e.sum(axis=-1, keepdims=True)")
    _body(nb, "ex3_gelu", "    return x")
    # and it saw the hidden tests run in its kernel, and printed them in a later cell's output
    _cell(nb, "ex1_softmax").source = (
        "seen = []\nget_ipython().input_transformers_post.append(lambda lines: seen.extend(lines)"
        " or lines)\n" + _cell(nb, "ex1_softmax").source)
    _cell(nb, "ex2_row_sum").source = "print(''.join(seen))\n" + _cell(nb, "ex2_row_sum").source
    cases["hidden_fail"] = (nb, 1)
    return cases


@pytest.fixture(scope="module")
def graded(course):
    """The submissions graded by `minilm grade`'s engine, 2 workers."""
    from minilm.grading.parallel import grade_assignment

    cases = submissions()
    for student, (nb, _) in cases.items():
        write_submission(course, "tiny", student, nb)
    lines = []
    report = grade_assignment(course, "tiny", workers=2, timeout=TIMEOUT, students=list(cases),
                              log=lines.append)
    return cases, {r.student: r for r in report.results}, lines


def graded_cells(root: Path, student: str) -> list[str]:
    """The grade ids of the autograded notebook of `student`, in order (None: a plain cell)."""
    nb = json.loads((root / "autograded" / student / "tiny" / "tiny.ipynb").read_text())
    return [cell["metadata"].get("nbgrader", {}).get("grade_id") for cell in nb["cells"]]


@pytest.mark.parametrize("student, words", [
    ("v3", "converted from notebook format 3 to 4"),
    ("duplicated", "ex1_softmax_tests was in the notebook more than once: the one in cell 5 ran "
                   "as a plain cell"),
    ("duplicated", "moved ex1_softmax_tests back below its solution ex1_softmax"),
    ("moved", "moved ex1_softmax_tests back below its solution ex1_softmax"),
])
def test_repaired_submission_is_graded_with_a_note(graded, student, words):
    cases, results, lines = graded
    result = results[student]
    assert (result.status, result.score, result.max_score) == ("graded", cases[student][1], 7), \
        result.error
    assert any(words in note for note in result.notes), result.notes
    assert f"note: {words}" in "\n".join(lines)


def test_v3_notebook_is_read_converted_and_left_as_submitted(course, graded):
    path = course / "submitted" / "v3" / "tiny" / "tiny.ipynb"
    assert json.loads(path.read_text())["nbformat"] == 3
    nb = read_notebook(path)
    assert nb["nbformat"] == 4 and nb["metadata"]["orig_nbformat"] == 3


def test_duplicate_and_moved_test_cells_run_in_the_source_order(course, graded):
    for student in ("duplicated", "moved"):
        ids = graded_cells(course, student)
        assert ids.count("ex1_softmax_tests") == 1
        assert ids.index("ex1_softmax_tests") == ids.index("ex1_softmax") + 1, ids


def test_feedback_shows_the_failures_but_not_the_hidden_tests(course, graded):
    from minilm.grading.runner import run_nbgrader

    assert graded[1]["hidden_fail"].score == 1
    autograded = (course / "autograded" / "hidden_fail" / "tiny" / "tiny.ipynb").read_text()
    assert all(json.dumps(line)[1:-1] in autograded for line in HIDDEN_LINES)  # run, not shown
    result = run_nbgrader("generate_feedback", course, "tiny", "hidden_fail")
    assert result["success"], result.get("error")
    html = (course / "feedback" / "hidden_fail" / "tiny" / "tiny.html").read_text()
    text = unescape(re.sub(r"<[^>]+>", "", html))
    assert "HIDDEN TESTS" not in text
    assert not [line for line in HIDDEN_LINES if line in text]  # not even as printed in a cell
    assert "x = rng.standard_normal((2, 3)).astype(np.float32)" in text  # the visible tests
    assert "(a hidden test)" in text  # where exercise 1's hidden test failed
    assert text.count("Not equal to tolerance") == 2  # the message of each failed check


def test_rerun_keeps_unchanged_submissions_and_regrades_changed_or_fresh(course, graded):
    from minilm.grading.parallel import grade_assignment

    def grade(**options):
        lines = []
        report = grade_assignment(course, "tiny", timeout=TIMEOUT, students=["v3", "moved"],
                                  log=lines.append, **options)
        return {r.student: r for r in report.results}, lines

    results, lines = grade()
    assert results["v3"].kept and results["moved"].kept
    assert "v3: 7 / 7 (kept from an earlier run)" in [line.split("\n")[0] for line in lines]
    nb = nbformat.convert(solution(), 3)  # the student submits again
    nb.worksheets[0].cells.append(nbformat.v3.new_text_cell("markdown", "done"))
    write_submission(course, "tiny", "v3", nb)
    results, lines = grade()
    assert not results["v3"].kept and results["v3"].score == 7 and results["moved"].kept
    results, _ = grade(fresh=True)
    assert not results["v3"].kept and not results["moved"].kept
    assert (results["moved"].score, results["v3"].score) == (7, 7)


# -- a worker that dies ---------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:  # it ended meanwhile
            continue
        if stat and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started (stopped first: it starts nothing more)."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return
    tree = [pid]
    for parent in tree:  # grows while it is walked
        tree += children(parent)
    for process in tree:
        try:
            os.kill(process, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_workers_grading(root: Path, student: str, stop: threading.Event) -> None:
    """Kill this process's grading workers (and their kernels) whenever grading of `student`
    starts: each time nbgrader writes its sanitized notebook, before running it."""
    path = root / "autograded" / student / "tiny" / "tiny.ipynb"
    seen = None
    while not stop.wait(0.05):
        try:
            version = (path.stat().st_ino, path.stat().st_mtime_ns)
        except FileNotFoundError:
            continue
        if version != seen:
            seen = version
            for worker in filter(is_worker, children(os.getpid())):
                kill_tree(worker)


def is_worker(pid: int) -> bool:
    """Whether process `pid` is a multiprocessing ("spawn") worker."""
    try:
        return "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:  # it ended meanwhile
        return False


def test_every_student_gets_a_line_when_grading_crashes_twice(course):
    from minilm.grading.parallel import grade_assignment

    students = ["doomed", "ok1", "ok2"]  # "doomed" and "ok1" are graded at the same time
    for student in students:
        write_submission(course, "tiny", student, solution())
    stop = threading.Event()
    killer = threading.Thread(target=kill_workers_grading, args=(course, "doomed", stop))
    killer.start()
    lines = []
    try:
        report = grade_assignment(course, "tiny", workers=2, timeout=TIMEOUT, students=students,
                                  log=lines.append)
    finally:
        stop.set()
        killer.join()
    results = {r.student: r for r in report.results}
    firsts = [line.split("\n")[0] for line in lines]
    assert sorted(line.split(":")[0] for line in firsts) == students  # one line each
    assert "doomed: ERROR the grading process died (crash), also when graded alone" in firsts
    assert results["doomed"].notes == ["the grading process died (crash); regraded alone: it died "
                                       "again"]
    assert results["ok1"].notes == ["the grading process died (crash); regraded alone: this time "
                                    "it finished"]
    assert [results[s].score for s in ("ok1", "ok2")] == [7, 7]
    table = list(csv.DictReader(open(course / "reports" / "tiny.csv", encoding="utf-8")))
    assert sorted(row["student"] for row in table) == students
    assert report.problems == []


# -- `minilm grade` killed, interrupted, resumed --------------------------------------------------

def minilm_grade(root: Path, stop_after: str = "", how=None):
    """Run `minilm grade tiny` on course `root` in its own session; once a line starts with
    `stop_after`, call `how(pid)`. (exit code, stdout and stderr, its session id)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "minilm", "grade", "tiny", "--course", str(root),
         "--timeout", str(TIMEOUT), *SANDBOX_FLAGS], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out = []
    for line in process.stdout:
        out.append(line)
        if stop_after and line.startswith(stop_after):
            how(process.pid)
    return process.wait(timeout=600), "".join(out), process.pid


def alive_in_session(session: int) -> list[str]:
    """The processes of a session that still run (zombies do not count)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split() if stat else []
        if fields and int(fields[3]) == session and fields[0] != "Z":
            found.append(stat.split(")")[0] + ")")
    return found


def rows(root: Path) -> list[tuple[str, str]]:
    table = csv.DictReader(open(root / "reports" / "tiny.csv", encoding="utf-8"))
    return [(row["student"], row["score"]) for row in table]


def test_killed_and_interrupted_grading_resumes(course, tmp_path):
    root = tmp_path / "class"
    shutil.copytree(course / "solutions", root / "solutions")
    for name in ("nbgrader_config.py", "gradebook.db"):
        shutil.copy(course / name, root)
    for student in ("a1", "b2", "c3"):
        write_submission(root, "tiny", student, solution())

    # killed outright (the whole process group) once the first student is graded
    code, out, _ = minilm_grade(root, "a1:", lambda pid: os.killpg(pid, signal.SIGKILL))
    assert code == -signal.SIGKILL and "a1: 7 / 7" in out
    assert rows(root) == [("a1", "7.0")]
    assert json.loads((root / "reports" / "tiny" / "a1.json").read_text())["score"] == 7

    # interrupted (SIGTERM to `minilm grade` alone) once the next student is graded
    code, out, session = minilm_grade(root, "b2:", lambda pid: os.kill(pid, signal.SIGTERM))
    assert code == 130, out
    assert "a1: 7 / 7 (kept from an earlier run)" in out and "b2: 7 / 7\n" in out
    assert "interrupted: 2 of 3 students have their result" in out
    assert "run the same `minilm grade` command again to grade the other 1" in out
    assert alive_in_session(session) == []  # its workers and their kernels stopped too
    assert rows(root) == [("a1", "7.0"), ("b2", "7.0")]

    code, out, _ = minilm_grade(root)
    assert code == 0, out
    assert "a1: 7 / 7 (kept from an earlier run)" in out
    assert "b2: 7 / 7 (kept from an earlier run)" in out and "c3: 7 / 7\n" in out
    assert "3 graded (2 kept from an earlier run)" in out
    assert rows(root) == [("a1", "7.0"), ("b2", "7.0"), ("c3", "7.0")]
