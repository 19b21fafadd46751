"""`minilm bundle --out DIR`: the student bundle, the course without its solutions.

What an instructor hands a class instead of the repository: the chapter notebooks (`course/`, less
the README for the course's authors), the released exercises (`exercises/`: what nbgrader's
`generate_assignment` made, with no solutions and no hidden tests, and its README for students)
and a README on top: how to install minilm and open the course, then the students' guide of
`exercises/README.md`. Nothing of `solutions/`, no gradebook, no `nbgrader_config.py`: there
`minilm check` grades with the visible tests of the release (`course.find_source`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import __version__
from .config import RELEASE_DIRECTORY
from .course import holds_solutions, list_assignments, repo_root

CACHES = (".ipynb_checkpoints", "__pycache__")
COURSE = "course"  # the chapter notebooks' folder; its README.md is for the course's authors

HEADER = """\
# minilm: the course, for students

This folder holds the minilm course as your instructor hands it out: the chapter notebooks in
`course/` and the exercises in `exercises/`. The solutions and the hidden tests stay with your
instructor.

## Install minilm

Python 3.11 or newer. Install the `minilm` package the way your instructor says: from the wheel
they give you, or from the course repository if you have access to it:

```bash
python -m pip install minilm-{version}-py3-none-any.whl      # or: python -m pip install "git+URL"
```

## Open the course

In this folder:

```bash
jupyter lab course/00_welcome.ipynb
```

Chapter 0 checks your setup; every chapter ends with a link to its exercise notebook.

"""


def student_readme(guide: str) -> str:
    """The bundle's README: install and open the course, then `guide` (exercises/README.md,
    whose one `# ` title goes a level down)."""
    return HEADER.format(version=__version__) + "#" + guide


def write_bundle(out) -> list[Path]:
    """Write the student bundle of the course repository minilm is installed from into `out`, a
    new or empty folder; returns the files written, relative to `out`."""
    root = repo_root()
    course, release, out = root / COURSE, root / RELEASE_DIRECTORY, Path(out)
    for folder in (course, release):
        if not folder.is_dir():
            raise FileNotFoundError(f"no {folder.name}/ in {root}: `minilm bundle` needs the "
                                    "course repository, installed with `pip install -e .`")
    if holds_solutions(release):
        raise ValueError(f"{release} holds solutions or hidden tests, so it is no release: "
                         "regenerate it with `minilm exercises`")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ValueError(f"--out {out}: exists and is not an empty folder; give a new one")
    if any(folder.resolve() in (out.resolve(), *out.resolve().parents)
           for folder in (course, release)):
        raise ValueError(f"--out {out}: inside {COURSE}/ or {RELEASE_DIRECTORY}/; give a folder "
                         "outside them")
    shutil.copytree(course, out / COURSE, ignore=shutil.ignore_patterns(*CACHES, "README.md"))
    for name in list_assignments(release):
        shutil.copytree(release / name, out / RELEASE_DIRECTORY / name,
                        ignore=shutil.ignore_patterns(*CACHES))
    guide = (release / "README.md").read_text(encoding="utf-8")
    (out / RELEASE_DIRECTORY / "README.md").write_text(guide, encoding="utf-8")
    (out / "README.md").write_text(student_readme(guide), encoding="utf-8")
    return sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
