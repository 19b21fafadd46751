"""The exercises: one assignment per chapter 1-11, exercises/ exactly what nbgrader generates from
solutions/, every solution scoring full marks under the autograder, every release running to its
first NotImplementedError. Execution is marked `notebooks` (minutes in all)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import nbformat
import pytest

from minilm.grading.course import list_assignments

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
CHAPTERS = [p.stem for p in sorted((ROOT / "course").glob("*.ipynb"))
            if re.match(r"(0[1-9]|1[01])_", p.name)]  # chapters 1-11 have exercises
EXPECTED = [f"ch{name}" for name in CHAPTERS]  # 03_attention -> ch03_attention
ASSIGNMENTS = list_assignments(SOLUTIONS)
RELEASED = sorted(EXERCISES.glob("*/*.ipynb"))
NOTEBOOK_TIMEOUT = 240  # seconds for one notebook (a solution should need under 60)


def test_one_assignment_per_chapter():
    assert len(EXPECTED) == 11
    missing = [name for name in EXPECTED if name not in ASSIGNMENTS]
    assert not missing, f"no solutions/NAME/NAME.ipynb for {missing}"
    released = [name for name in EXPECTED if not (EXERCISES / name / f"{name}.ipynb").exists()]
    assert not released, f"not generated into exercises/: {released} (run `minilm exercises`)"


def test_exercises_are_what_nbgrader_generates():
    from minilm.grading.release import compare_release

    problems = compare_release(SOLUTIONS, EXERCISES)
    assert not problems, ("exercises/ is not what `nbgrader generate_assignment` makes from "
                          "solutions/: after editing solutions/, run `minilm exercises`; if you "
                          "worked on an exercise in place, keep your copy elsewhere and restore "
                          "the release with `git checkout exercises/`:\n" + "\n".join(problems))


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_source_notebook_is_clean_and_well_formed(name):
    """Committed without outputs; nbgrader metadata valid; each solution has its test cell."""
    from nbgrader.nbgraderformat import MetadataValidator

    nb = nbformat.read(SOLUTIONS / name / f"{name}.ipynb", as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"code cells {dirty} have outputs or execution counts"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    MetadataValidator().validate_nb(nb)
    meta = [c.metadata.nbgrader for c in nb.cells if "nbgrader" in c.metadata]
    ids = [m["grade_id"] for m in meta]
    assert len(ids) == len(set(ids)), "grade ids repeat"
    tests = {m["grade_id"]: m["points"] for m in meta if m.get("grade") and not m.get("solution")}
    for solution in (m["grade_id"] for m in meta if m.get("solution")):
        assert f"{solution}_tests" in tests, f"solution cell {solution} has no {solution}_tests"
    assert tests and all(points > 0 for points in tests.values())


# -- execution --------------------------------------------------------------------------------

@pytest.mark.notebooks
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_scores_full_marks(name):
    """The solution notebook, autograded with its hidden tests as a student's would be."""
    from minilm.grading.check import check_notebook, format_check

    check = check_notebook(SOLUTIONS / name / f"{name}.ipynb", source=SOLUTIONS,
                           assignment=name)
    report = format_check(check)
    print(report)
    assert not check.error, report
    assert check.rows and check.score == check.max_score, report
    assert check.seconds < NOTEBOOK_TIMEOUT, report


def _run_to_first_error(path: Path):
    """Execute cells in order until one raises; (its error name, or None, seconds)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=NOTEBOOK_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        asyncio.run(asyncio.wait_for(client.async_execute(), NOTEBOOK_TIMEOUT))
    except CellExecutionError as error:
        return error.ename, str(error)[-2000:], time.perf_counter() - start
    return None, "", time.perf_counter() - start


@pytest.mark.notebooks
@pytest.mark.parametrize("path", RELEASED, ids=[p.parent.name for p in RELEASED])
def test_release_runs_to_its_first_not_implemented_error(path):
    ename, message, seconds = _run_to_first_error(path)
    print(f"{path.parent.name}: first error {ename} after {seconds:.1f} s")
    assert ename == "NotImplementedError", (
        f"{path.name}: the first error must be the NotImplementedError of an unsolved exercise, "
        f"got {ename}:\n{message}")


def test_released_notebooks_have_no_solutions_or_hidden_tests():
    for path in RELEASED:
        text = path.read_text(encoding="utf-8")
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS"):
            assert marker not in text, f"{path}: {marker} left in the release"
