"""Where the assignments are, and what a submitted file is: reading and identifying notebooks.

An assignment is a folder `chNN_name/` holding `chNN_name.ipynb`, in the nbgrader source directory
(`solutions/` in the repository: solutions and hidden tests) or in a release (`exercises/`: what
students get, visible tests only). `find_source` says which of them `minilm check` grades with. A
submitted file is usable when it is a Jupyter notebook (JSON with a list of cells) of one of those
assignments, recognised by the nbgrader cell ids (`grade_id`) it carries or, failing that, by its
file name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .config import RELEASE_DIRECTORY, SOURCE_DIRECTORY

SOURCE_MARKERS = ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS")  # nbgrader's: only a source holds them


class UnusableNotebook(ValueError):
    """A file that cannot be graded: missing, not JSON, not a notebook, or of no assignment."""


def repo_root() -> Path:
    """The folder above the minilm package: the repository it was installed from, for an
    editable install (for any other install it holds no solutions/ or exercises/)."""
    return Path(__file__).resolve().parents[2]


def default_source() -> Path:
    """The repository's `solutions/` folder (the nbgrader source directory)."""
    folder = repo_root() / SOURCE_DIRECTORY
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no solutions/ folder next to the minilm package ({folder}): clone the repository "
            "and install it with `pip install -e .`, or pass --source DIR")
    return folder


@dataclass(frozen=True)
class Source:
    """A folder of assignments to grade with, and whether its test cells hold hidden tests."""
    folder: Path
    hidden: bool  # True: an nbgrader source directory (solutions/); False: a release


def holds_solutions(folder: Path) -> bool:
    """Whether an assignment of `folder` has nbgrader's solution or hidden-test regions, as a
    source directory does and a release never does. FileNotFoundError if there is no `folder`."""
    for name in list_assignments(folder):
        for cell in read_notebook(assignment_notebook(folder, name))["cells"]:
            text = "".join(cell.get("source", "")) if isinstance(cell, dict) else ""
            if any(marker in text for marker in SOURCE_MARKERS):
                return True
    return False


def _is_release(folder: Path) -> bool:
    try:
        return bool(list_assignments(folder)) and not holds_solutions(folder)
    except OSError:  # missing or unreadable
        return False


def find_source(notebook, source=None, visible_only: bool = False) -> Source:
    """Where `minilm check` takes the tests of `notebook` from: `source` when given (a source
    directory or a release); else the repository's solutions/ with the hidden tests, unless
    `visible_only` or there is none (a student bundle, a non-editable install); else the first
    release among the notebook's folder and those above it and their exercises/ subfolders (the
    bundle's or repository's exercises/, wherever the copy sits inside it), then the repository's
    exercises/."""
    if source is not None:
        found = Source(Path(source), holds_solutions(Path(source)))
        if visible_only and found.hidden:
            raise ValueError(f"--visible-only: --source {source} holds solutions and hidden tests "
                             "(an nbgrader source directory); give --source a folder of released "
                             "assignments such as exercises/, or leave out --visible-only")
        return found
    solutions = repo_root() / SOURCE_DIRECTORY
    if not visible_only and solutions.is_dir():
        return Source(solutions, True)
    here = Path(notebook).resolve().parent
    above = [f for folder in (here, *here.parents) for f in (folder, folder / RELEASE_DIRECTORY)]
    for folder in [*above, repo_root() / RELEASE_DIRECTORY]:
        if _is_release(folder):
            return Source(folder, False)
    raise FileNotFoundError(
        f"no released exercises for {notebook}: no exercises/ in or above its folder nor next to "
        f"the minilm package{'' if visible_only else ', and no solutions/ there'}; pass --source "
        "DIR, a folder of released assignments such as a student bundle's exercises/")


def list_assignments(source: Path) -> list[str]:
    """Names of the assignments in `source`: folders `NAME/` that hold `NAME.ipynb`."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"source directory {source} does not exist")
    return sorted(d.name for d in source.iterdir()
                  if d.is_dir() and (d / f"{d.name}.ipynb").is_file())


def assignment_notebook(source: Path, assignment: str) -> Path:
    path = Path(source) / assignment / f"{assignment}.ipynb"
    if not path.is_file():
        known = ", ".join(list_assignments(source)) or "none"
        raise FileNotFoundError(f"no assignment {assignment!r} in {source} (there are: {known})")
    return path


def read_notebook(path) -> dict:
    """The notebook at `path` as a plain dict in format 4 (an older format is converted by
    nbformat, which is also how nbgrader's autograde reads it); UnusableNotebook with a clear
    reason otherwise."""
    path = Path(path)
    if not path.exists():
        raise UnusableNotebook(f"{path}: no such file")
    if not path.is_file():
        raise UnusableNotebook(f"{path}: not a file")
    try:
        text = path.read_text(encoding="utf-8")
        nb = json.loads(text)
    except UnicodeDecodeError:
        raise UnusableNotebook(f"{path}: not a text file (a notebook is JSON)") from None
    except json.JSONDecodeError as error:
        raise UnusableNotebook(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, "
                               f"column {error.colno}); the file is damaged") from None
    version = nb.get("nbformat") if isinstance(nb, dict) else None
    if isinstance(version, int) and version < 4:
        nb = _converted(path, text, version)
    if not (isinstance(nb, dict) and isinstance(nb.get("cells"), list)
            and isinstance(version, int)):
        raise UnusableNotebook(f"{path}: JSON, but not a Jupyter notebook (no nbformat / cells)")
    if nb["nbformat"] != 4:
        raise UnusableNotebook(f"{path}: notebook format {nb['nbformat']}; expected 4 (or an "
                               "older one, which is converted)")
    return nb


def _converted(path: Path, text: str, version: int) -> dict:
    """A notebook of format 1-3 converted to format 4 by nbformat (its metadata then says
    `orig_nbformat`)."""
    import nbformat

    try:
        return nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat fails in many ways on a damaged old notebook
        raise UnusableNotebook(f"{path}: notebook format {version}, which nbformat cannot convert "
                               f"to format 4 ({type(error).__name__}: {error})") from None


def grade_ids(nb: dict) -> list[str]:
    """The nbgrader cell ids (`grade_id`) of a notebook, in order."""
    ids = []
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}) if isinstance(cell, dict) else {}
        grade_id = meta.get("nbgrader", {}).get("grade_id") if isinstance(meta, dict) else None
        if isinstance(grade_id, str):
            ids.append(grade_id)
    return ids


@dataclass(frozen=True)
class Match:
    """Which assignment a notebook belongs to, and how sure that is."""
    assignment: str | None  # None: none of them
    shared_ids: int  # nbgrader cell ids it shares with that assignment's source
    reason: str  # one line for the user


def exercise_ids(nb: dict) -> set[str]:
    """The ids of a notebook's exercise cells: solution and test cells (not the `intro`,
    `setup` and task cells every assignment has)."""
    ids = set()
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell, dict) else {}
        if isinstance(meta, dict) and (meta.get("grade") or meta.get("solution")) \
                and isinstance(meta.get("grade_id"), str):
            ids.add(meta["grade_id"])
    return ids


def identify_assignment(nb: dict, source: Path, file_name: str = "") -> Match:
    """The assignment of `source` that notebook `nb` belongs to: the one whose exercise cell ids
    (solution and test cells) it shares most, else the one its file name names."""
    assignments = list_assignments(source)
    ids_of = {name: exercise_ids(read_notebook(assignment_notebook(source, name)))
              for name in assignments}
    mine = set(grade_ids(nb))
    best = max(assignments, key=lambda name: (len(mine & ids_of[name]), name == file_name),
               default=None)
    if best is not None and mine & ids_of[best]:
        return Match(best, len(mine & ids_of[best]), f"its exercise cells belong to {best}")
    if file_name in assignments:
        return Match(file_name, 0, f"named {file_name}.ipynb, but it has none of the exercise "
                                   f"cells of {file_name}")
    return Match(None, 0, "it has none of the exercise cells of any assignment "
                          f"({', '.join(assignments) or 'none found'})")
