"""`exercises/` is what nbgrader's `generate_assignment` makes from `solutions/`: made here, and
checked here.

`generate_release` runs nbgrader's `generate_assignment` (its converter, with the course config)
in a temporary course directory, so no gradebook.db lands in the repository, and copies the
release folders it made into the release directory. `compare_release` regenerates into a
temporary folder and lists every difference with the committed release (notebooks compared as
JSON, other files byte for byte); the tests and `minilm exercises --check` use it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .config import RELEASE_DIRECTORY, SOURCE_DIRECTORY, config_file_text
from .course import list_assignments


def make_course(root: Path, source: Path, assignments, timeout: float | None = None) -> Path:
    """A course directory at `root` (created) with `assignments` copied from `source` into its
    source directory and an `nbgrader_config.py` with the course settings."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(config_file_text(timeout), encoding="utf-8")
    for name in assignments:
        shutil.copytree(Path(source) / name, root / SOURCE_DIRECTORY / name,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
                        dirs_exist_ok=True)
    return root


def generate_into(root: Path, assignments) -> None:
    """Run `generate_assignment` for each assignment of course `root`; RuntimeError with
    nbgrader's reason if one fails."""
    from .runner import failure_reason, run_nbgrader

    for name in assignments:
        result = run_nbgrader("generate_assignment", root, name)
        if not result["success"]:
            raise RuntimeError(f"nbgrader generate_assignment {name} failed: "
                               f"{failure_reason(result)}")


def _files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*"))
            if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts}


def generate_release(source: Path, release: Path, assignments=None) -> list[str]:
    """Regenerate `release/NAME/` from `source/NAME/` for each assignment (default: all in
    `source`); returns the names. Other files in `release` (README.md) are left alone."""
    assignments = list(assignments or list_assignments(source))
    with tempfile.TemporaryDirectory(prefix="minilm-release-") as tmp:
        root = make_course(Path(tmp), source, assignments)
        generate_into(root, assignments)
        for name in assignments:
            target = Path(release) / name
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            for relative, path in _files(root / RELEASE_DIRECTORY / name).items():
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target / relative)  # contents only: no read-only modes
    return assignments


def compare_release(source: Path, release: Path, assignments=None) -> list[str]:
    """Differences between `release` and what generation makes from `source` now; [] when the
    committed release is exactly the generated one. Release folders with no source count too."""
    source, release = Path(source), Path(release)
    names = list(assignments or list_assignments(source))
    problems = []
    if assignments is None and release.is_dir():
        strays = sorted(d.name for d in release.iterdir()
                        if d.is_dir() and d.name not in names and not d.name.startswith("."))
        problems += [f"{name}/: in the release but not in {source}" for name in strays]
    with tempfile.TemporaryDirectory(prefix="minilm-release-") as tmp:
        generate_release(source, Path(tmp), names)
        for name in names:
            made, have = _files(Path(tmp) / name), _files(release / name)
            for relative in sorted(made.keys() | have.keys()):
                label = f"{name}/{relative}"
                if relative not in have:
                    problems.append(f"{label}: missing (generation makes it)")
                elif relative not in made:
                    problems.append(f"{label}: not made by generation")
                elif not _same(made[relative], have[relative]):
                    problems.append(f"{label}: differs from what generation makes")
    return problems


def _same(a: Path, b: Path) -> bool:
    if a.suffix == ".ipynb":
        try:
            return json.loads(a.read_text("utf-8")) == json.loads(b.read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return False
    return a.read_bytes() == b.read_bytes()
