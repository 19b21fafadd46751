"""The grading sandbox's parts: limits, what it mounts, refusing without a sandbox, `--unsafe`,
the notebook time budget. (The attacks it stops are in test_grading_redteam.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from test_grading import FIXTURES, _body, solution, write_submission
from traitlets.config import Config

from minilm.grading import sandbox
from minilm.grading.config import Isolation, SandboxUnavailable
from minilm.grading.sandbox import Limits, bwrap_argv, sandbox_problem


@pytest.mark.parametrize("field, value", [("memory_mib", 0), ("processes", -1),
                                          ("disk_mib", True), ("wall_seconds", "10")])
def test_bad_limit_is_a_clear_error(field, value):
    with pytest.raises(ValueError, match=field):
        Limits(**{field: value})


def test_limits_become_launcher_flags():
    assert "--memory-mib=100" in Limits(memory_mib=100).arguments()


def _mounts(argv):
    return [(argv[i], argv[i + 1]) for i, word in enumerate(argv) if word in
            ("--ro-bind", "--tmpfs")]


def test_a_course_inside_a_visible_folder_is_covered_and_the_package_stays_visible(tmp_path):
    env, course = tmp_path / "env", tmp_path / "env" / "course"
    package = course / "minilm"
    argv = bwrap_argv(Limits(), tmp_path / "sock", [course], paths=[env, package])
    order = [(kind, target) for kind, target in _mounts(argv) if str(tmp_path) in target]
    assert order.index(("--ro-bind", str(env))) < order.index(("--tmpfs", str(course))) \
        < order.index(("--ro-bind", str(package)))


def test_a_course_outside_every_visible_folder_is_not_mounted_at_all(tmp_path):
    argv = bwrap_argv(Limits(), tmp_path / "sock", [tmp_path / "course"], paths=[Path(sys.prefix)])
    assert not any(str(tmp_path / "course") in word for word in argv)
    assert "--unshare-all" in argv and "--clearenv" in argv and argv[-1] == "--"


def test_no_sandbox_means_a_refusal_unless_unsafe(monkeypatch, tmp_path):
    from minilm.grading.parallel import grade_assignment
    from minilm.grading.release import generate_into, make_course

    monkeypatch.setattr(sandbox, "_PROBLEM", ["bubblewrap (bwrap) is not installed: ..."])
    with pytest.raises(SandboxUnavailable, match="bwrap"):
        Isolation(sandbox=True).apply(Config())
    root = make_course(tmp_path / "course", FIXTURES, ["tiny"], timeout=20)
    generate_into(root, ["tiny"])
    write_submission(root, "tiny", "alice", solution())
    with pytest.raises(SandboxUnavailable):
        grade_assignment(root, "tiny", isolation=Isolation(sandbox=True), log=lambda line: None)
    assert not (root / "autograded").exists()


@pytest.mark.skipif(sandbox_problem() is not None, reason="needs the sandbox")
def test_unsafe_grades_without_the_sandbox_and_the_attack_then_works(tmp_path):
    """The red team's point, shown the other way round: unsandboxed, a submission reads the
    solutions (and so scores full marks)."""
    from minilm.grading.parallel import grade_assignment
    from minilm.grading.release import generate_into, make_course

    root = make_course(tmp_path / "course", FIXTURES, ["tiny"], timeout=20)
    generate_into(root, ["tiny"])
    nb = nbformat.read(root / "exercises" / "tiny" / "tiny.ipynb", as_version=4)
    steal = (f"import json\nfor cell in json.load(open({str(root / 'solutions/tiny/tiny.ipynb')!r})"
             ")['cells']:\n    if 'def ' in ''.join(cell['source']):\n"
             "        exec(''.join(cell['source']), globals())\n")
    for cell in nb.cells:  # after each exercise's stub: the solutions, read from solutions/
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source += "\n" + steal
    write_submission(root, "tiny", "thief", nb)
    scores = {}
    for isolation in (Isolation(sandbox=False), Isolation(sandbox=True)):
        report = grade_assignment(root, "tiny", isolation=isolation, fresh=True,
                                  log=lambda line: None)
        scores[isolation.sandbox] = report.results[0].score
    assert scores == {False: 7, True: 0}


def test_grade_without_a_sandbox_exits_2_with_the_reason(tmp_path):
    code = ("import sys; from minilm.grading import sandbox; sandbox._PROBLEM[:] = ['no bwrap']; "
            "from minilm.cli import main; sys.exit(main(['grade', 'tiny', '--course', "
            f"{str(tmp_path)!r}]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 2 and "no sandbox: no bwrap" in run.stderr


def test_the_notebook_budget_stops_the_cells_left(tmp_path, capsys):
    from minilm.grading.check import check_notebook, format_check

    nb = solution()  # exercise 1 sleeps past the budget: exercises 2 and 3 are not run
    _body(nb, "ex1_softmax", "    pass\nimport time\ntime.sleep(30)")
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    check = check_notebook(path, source=FIXTURES, timeout=60,
                           isolation=Isolation(notebook_timeout=8))
    assert check.score == 0, format_check(check)
    assert any("used up its 8 s budget" in note for note in check.notes), check.notes
