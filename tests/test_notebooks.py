"""The course notebooks: each runs top to bottom in a fresh kernel, and is committed clean.

Execution is marked `notebooks` (minutes in all); the cleanliness and link checks are instant.
"""

import asyncio
import re
import time
import warnings
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
COURSE = ROOT / "course"
NOTEBOOKS = sorted(COURSE.glob("*.ipynb"))
NOTEBOOK_TIMEOUT = 240  # seconds for one whole notebook (all together must stay under 10 min)


def _ids(paths):
    return [p.name for p in paths]


def test_there_are_chapter_notebooks():
    assert any(p.name.startswith("00_") for p in NOTEBOOKS), "chapter 0 (00_*.ipynb) is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} have outputs or execution counts; clear "
                       "them (Edit -> Clear Outputs of All Cells) before committing")


def test_readme_chapter_map_links_every_chapter():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    chapter_map = readme.split("## Chapter map", 1)[1].split("\n## ", 1)[0]
    linked = set(re.findall(r"\(course/([^)]+\.ipynb)\)", chapter_map))
    missing = [p.name for p in NOTEBOOKS if re.match(r"\d\d_", p.name) and p.name not in linked]
    assert not missing, f"README chapter map does not link {missing}"


CHAPTERS_WITH_EXERCISES = [p for p in NOTEBOOKS if re.match(r"(0[1-9]|1[01])_", p.name)]


@pytest.mark.parametrize("path", CHAPTERS_WITH_EXERCISES, ids=_ids(CHAPTERS_WITH_EXERCISES))
def test_chapter_links_its_exercise(path):
    """Chapters 1-11 end with a link to exercises/chNN_name/chNN_name.ipynb, which exists."""
    name = f"ch{path.stem}"  # 03_attention -> ch03_attention
    target = f"../exercises/{name}/{name}.ipynb"
    last = "".join(nbformat.read(path, as_version=4).cells[-1].source)
    assert f"({target})" in last, f"{path.name}: the last cell does not link {target}"
    assert (COURSE / target).resolve().is_file(), f"{path.name} links {target}, which is missing"

def _execute(path: Path) -> None:
    """Run every cell of `path` in a fresh kernel; TimeoutError after NOTEBOOK_TIMEOUT seconds."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=NOTEBOOK_TIMEOUT + 10, kernel_name="python3",
                            resources={"metadata": {"path": str(COURSE)}})
    start = time.perf_counter()
    try:  # the kernel is shut down when the time runs out
        asyncio.run(asyncio.wait_for(client.async_execute(), NOTEBOOK_TIMEOUT))
    except DeadKernelError:  # nbclient reports the cancellation at the deadline as a dead kernel
        if time.perf_counter() - start < NOTEBOOK_TIMEOUT:
            raise
        raise TimeoutError from None


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs(path):
    start = time.perf_counter()
    try:
        _execute(path)
    except TimeoutError:
        # with ipykernel 7.4 a notebook now and then waits forever while its kernel idles (here
        # about one run in eight, at any cell; reported upstream as ipython/ipykernel#1554, the
        # usual workaround is ipykernel<7): a retry in a new kernel tells that from a slow one
        warnings.warn(f"{path.name}: no result within {NOTEBOOK_TIMEOUT} s; retrying once",
                      stacklevel=1)
        start = time.perf_counter()
        try:
            _execute(path)
        except TimeoutError:
            pytest.fail(f"{path.name} did not finish within {NOTEBOOK_TIMEOUT} s (twice)")
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
