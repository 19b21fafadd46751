"""Where the assignments are, and what a submitted file is: reading and identifying notebooks.

An assignment is a folder `chNN_name/` of the nbgrader source directory (`solutions/` in the
repository) holding `chNN_name.ipynb`. A submitted file is usable when it is a Jupyter notebook
(JSON with a list of cells) of one of those assignments, recognised by the nbgrader cell ids
(`grade_id`) it carries or, failing that, by its file name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class UnusableNotebook(ValueError):
    """A file that cannot be graded: missing, not JSON, not a notebook, or of no assignment."""


def repo_root() -> Path:
    """The repository the package was installed from (editable install)."""
    return Path(__file__).resolve().parents[2]


def default_source() -> Path:
    """The repository's `solutions/` folder (the nbgrader source directory)."""
    folder = repo_root() / "solutions"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no solutions/ folder next to the minilm package ({folder}): clone the repository "
            "and install it with `pip install -e .`, or pass --source DIR")
    return folder


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
    """The notebook at `path` as a plain dict; UnusableNotebook with a clear reason otherwise."""
    path = Path(path)
    if not path.exists():
        raise UnusableNotebook(f"{path}: no such file")
    if not path.is_file():
        raise UnusableNotebook(f"{path}: not a file")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UnusableNotebook(f"{path}: not a text file (a notebook is JSON)") from None
    except json.JSONDecodeError as error:
        raise UnusableNotebook(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, "
                               f"column {error.colno}); the file is damaged") from None
    if not (isinstance(nb, dict) and isinstance(nb.get("cells"), list)
            and isinstance(nb.get("nbformat"), int)):
        raise UnusableNotebook(f"{path}: JSON, but not a Jupyter notebook (no nbformat / cells)")
    if nb["nbformat"] != 4:
        raise UnusableNotebook(f"{path}: notebook format {nb['nbformat']}; expected 4")
    return nb


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
