"""The red team: submissions that try to get marks without the work, graded in one class run.

Every attacker solves exercise 3 of the tiny fixture assignment honestly (4 of 7 points) and puts
an attack in exercise 1's solution cell; so the right score of every attacker is 4. The attacks
know the course directory's absolute path (the worst case). The class is graded in two runs:
first the honest classmates, then the attackers; everything the first run left (the course
directory, the classmates' gradebook rows, the installed library) must be exactly the same after
the attackers' run, apart from the attackers' own results.

Attacks on the test cells themselves (patched asserts, patched references, IPython hooks) are
stopped by scoring outside the student's process (scoring.py): the kernel's test cells count for
nothing, the grader's checker runs them again on a record of the student's calls. An attacker whose
kernel stops recording (an input transformer that empties the test cells, a forged record) loses
exercise 3 too: 0 of 7.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from test_grading import FIXTURES, TIMEOUT, _body, _cell, solution, write_submission

from minilm.grading.sandbox import sandbox_problem

REQUIRED = bool(os.environ.get("MINILM_REQUIRE_SANDBOX"))  # set by .ci/run: CI must sandbox
pytestmark = pytest.mark.skipif(sandbox_problem() is not None and not REQUIRED,
                                reason=f"no grading sandbox here: {sandbox_problem()}")

HONEST = {"solved": 7, "partial": 6}  # classmates graded first
MARKER = 48611  # a number that appears in the command line of processes the attackers leave


def test_the_sandbox_runs_here():
    assert sandbox_problem() is None, sandbox_problem()


def attacks(root: Path, port: int) -> dict[str, str]:
    """{student: the code of their exercise 1 cell}: each tries to win marks it did not earn."""
    solutions = root / "solutions" / "tiny" / "tiny.ipynb"
    return {
        # read the hidden tests and solutions, and run the solutions
        "read_solutions": f"""
import json, glob, os
found = []
for path in [{str(solutions)!r}, {str(root / "gradebook.db")!r},
             "../../../solutions/tiny/tiny.ipynb", *glob.glob("/**/tiny.ipynb", recursive=True)]:
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        continue
    found.append(path)
    if path.endswith(".ipynb") and "BEGIN SOLUTION" in text:
        for cell in json.loads(text)["cells"]:
            if cell["cell_type"] == "code" and "def " in "".join(cell["source"]):
                exec("".join(cell["source"]), globals())
print("found", found)
""",
        # run a classmate's submission
        "copy_classmate": f"""
import json, glob
for path in glob.glob({str(root / "submitted")!r} + "/*/tiny/tiny.ipynb"):
    for cell in json.load(open(path))["cells"]:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), globals())
""",
        # rewrite grades in the gradebook, now and from a process that waits for the run's end
        "tamper_gradebook": f"""
import sqlite3, subprocess, sys
sql = "UPDATE grade SET auto_score = 0, manual_score = 0"
try:
    sqlite3.connect({str(root / "gradebook.db")!r}).execute(sql).connection.commit()
except Exception as error:
    print("gradebook:", error)
later = ("import time, sqlite3; time.sleep(4); "
         f"sqlite3.connect({str(root / 'gradebook.db')!r}).execute({{sql!r}}).connection.commit()"
         " # {MARKER}")
subprocess.Popen([sys.executable, "-c", later], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
""",
        # delete or overwrite classmates' work and the config, fill the disk, edit the library
        "tamper_files": f"""
import glob, os, shutil
import minilm
root = {str(root)!r}
for pattern in ["/submitted/solved/tiny/*.ipynb", "/autograded/*/tiny/*.ipynb"]:
    for path in glob.glob(root + pattern):
        try:
            open(path, "w").write("{{}}")
        except OSError as error:
            print(error)
for path in [root + "/nbgrader_config.py", os.path.join(os.path.dirname(minilm.__file__),
                                                         "__init__.py")]:
    try:
        open(path, "a").write("\\nraise SystemExit('pwned')\\n")
    except OSError as error:
        print(error)
shutil.rmtree(root + "/autograded/partial", ignore_errors=True)
try:
    with open(root + "/autograded/big", "wb") as f:
        f.write(b"x" * (1 << 30))
except OSError as error:
    print(error)
""",
        # talk to the network (a server of the test's on the host's loopback)
        "network": f"""
import socket
for host in ["127.0.0.1", "localhost", "::1"]:
    try:
        socket.create_connection((host, {port}), timeout=2).sendall(b"pwned")
    except OSError as error:
        print(host, error)
""",
        # use up memory, processes and disk, and leave processes behind
        "resources": f"""
import os, subprocess
import numpy as np
try:
    hog = np.ones(8 << 30, np.uint8)
except MemoryError as error:
    print(error)
children = []
try:
    for _ in range(2000):
        children.append(subprocess.Popen(["sleep", "{MARKER}"], start_new_session=True))
except OSError as error:
    print(len(children), "processes, then", error)
try:
    with open("/tmp/fill", "wb") as f:
        while True:
            f.write(b"x" * (1 << 24))
except OSError as error:
    print(error)
os.remove("/tmp/fill")
""",
        # kill every process it can reach (the grader, if it could see it)
        "kill_everything": """
import os, signal
for pid in [os.getppid(), 1]:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError as error:
        print(pid, error)
os.kill(-1, signal.SIGKILL)
""",
    }


WRONG = "def softmax(x):\n    return np.zeros_like(x)\n"  # a wrong answer to exercise 1
FORGED = {
    # the grader's assertion helper patched: every test cell passes
    "patched_assert": WRONG + "np.testing.assert_allclose = lambda *args, **kwargs: None\n",
    # the reference the hidden test compares with, patched to agree with the wrong answer
    "patched_reference": WRONG + "reference.softmax = lambda x: np.zeros_like(x)\n",
    # an IPython input transformer that turns every later test cell into `pass`
    "input_transformer": WRONG + (
        "get_ipython().input_transformers_post.append(\n"
        "    lambda lines: ['pass\\n'] if any('assert' in line for line in lines) else lines)\n"),
    # a hook that hides the error of every later cell
    "post_run_hook": WRONG + (
        "get_ipython().events.register('post_run_cell',\n"
        "    lambda result: setattr(result, 'error_in_exec', None))\n"),
    # a hook that gives every later cell an execute_result (nbgrader: partial credit = it)
    "pre_run_result": WRONG + (
        "get_ipython().events.register('pre_run_cell', lambda *args: get_ipython()\n"
        "    .display_pub.publish({'text/plain': '2'}) or get_ipython().displayhook(2))\n"),
    # a result whose comparisons are all True
    "rigged_comparisons": (
        "class Rigged(np.ndarray):\n"
        "    def __eq__(self, other):\n        return np.ones(np.shape(other), bool)\n"
        "    __le__ = __ge__ = __lt__ = __gt__ = __eq__\n"
        "    def __sub__(self, other):\n        return np.zeros(np.shape(other))\n"
        "    __rsub__ = __sub__\n"
        "def softmax(x):\n    return np.zeros_like(x).view(Rigged)\n"),
    # the library's answer, under its own name and under another
    "library_answer": "def softmax(x):\n    return reference.softmax(x)\n",
    "library_answer_aliased": (
        "from minilm.kernels.reference import softmax as library_softmax\n"
        "def softmax(x, _answer=library_softmax):\n    return _answer(x)\n"),
    # the kernel's record forged: every call of softmax claims an answer
    "forged_record": WRONG + (
        "import minilm.grading.recorder as recorder\n"
        "from IPython.display import display\n"
        "event = {'call': 'softmax', 'key': None, 'arguments': '', 'callbacks': [],\n"
        "         'changes': [], 'result': {'$ref': ['a', 0]}}\n"
        "recorder.start = lambda *args: None\n"
        "recorder.finish = lambda: display({recorder.MIME: {'events': [event] * 9,\n"
        "                                                   'missing': []}}, raw=True)\n"),
}


def attacker(code: str):
    nb = solution()
    _body(nb, "ex2_row_sum", "    raise NotImplementedError()")
    _cell(nb, "ex1_softmax").source = code
    return nb


def snapshot(root: Path, skip: set[str]) -> dict[str, str]:
    """sha256 of every file under the course and the installed library (but the attackers')."""
    import minilm

    hashes = {}
    for base in (root, Path(minilm.__file__).parent):
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base).parts
            if path.is_file() and "__pycache__" not in rel and not set(rel) & skip \
                    and path.name != "gradebook.db" and rel[:1] != ("reports",):
                hashes[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def gradebook_rows(root: Path, students) -> dict:
    from minilm.grading.runner import db_url, scores

    return {s: scores(db_url(root), "tiny", s) for s in students}


def marked_processes() -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if str(MARKER).encode() in cmdline:
                found.append(cmdline.decode(errors="replace"))
    return found


@pytest.fixture(scope="module")
def red_team(tmp_path_factory):
    from minilm.grading.parallel import grade_assignment
    from minilm.grading.release import generate_into, make_course

    root = tmp_path_factory.mktemp("redteam")
    make_course(root, FIXTURES, ["tiny"], timeout=TIMEOUT)
    generate_into(root, ["tiny"])
    release_partial = solution()
    _body(release_partial, "ex2_row_sum", "    raise NotImplementedError()")
    write_submission(root, "tiny", "solved", solution())
    write_submission(root, "tiny", "partial", release_partial)
    grade_assignment(root, "tiny", workers=2, timeout=TIMEOUT, log=lambda line: None)

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    connections = []

    def accept():
        while not stop.is_set():
            try:
                connections.append(server.accept())
            except OSError:
                pass
    stop = threading.Event()
    threading.Thread(target=accept, daemon=True).start()

    codes = {**attacks(root, server.getsockname()[1]), **FORGED}
    for student, code in codes.items():
        write_submission(root, "tiny", student, attacker(code))
    before = snapshot(root, set(codes))
    rows_before = gradebook_rows(root, HONEST)
    report = grade_assignment(root, "tiny", workers=2, timeout=TIMEOUT, students=sorted(codes),
                              log=lambda line: None)
    time.sleep(6)  # longer than any delayed tampering the attackers planned
    stop.set()
    return {"report": {r.student: r for r in report.results}, "root": root,
            "unchanged": before == snapshot(root, set(codes)),
            "changed": sorted(set(before.items()) ^ set(snapshot(root, set(codes)).items())),
            "rows": (rows_before, gradebook_rows(root, HONEST)), "connections": connections,
            "left_behind": marked_processes()}


@pytest.mark.parametrize("student", sorted(attacks(Path("/"), 0)))
def test_attack_earns_nothing(red_team, student):
    result = red_team["report"][student]
    assert result.status == "graded", result.error
    assert (result.score, result.max_score) == (4, 7), result.notes


@pytest.mark.parametrize("student", sorted(FORGED))
def test_forged_pass_earns_nothing(red_team, student):
    result = red_team["report"][student]
    assert result.status == "graded", result.error
    assert result.max_score == 7, result.notes
    if student in ("input_transformer", "forged_record"):  # no record of exercise 3 either
        assert result.score == 0, result.notes
    else:
        assert result.score == 4, result.notes


def test_nothing_outside_the_attackers_results_changed(red_team):
    assert red_team["unchanged"], red_team["changed"][:10]
    before, after = red_team["rows"]
    assert before == after and all(before.values())


def test_no_connection_reached_the_host(red_team):
    assert red_team["connections"] == []


def test_no_process_outlives_its_sandbox(red_team):
    assert red_team["left_behind"] == []
