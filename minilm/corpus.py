"""Real offline text corpora: the standard library's docstrings and the Language Reference.

Taught in chapter 6 (training). Nothing is downloaded:
  * training text: every docstring (module, class, function) of the Python standard library
    that runs minilm, in sorted file order (about 1.6 MB of English; tests excluded);
  * held-out text: `pydoc_data.topics`, the Language Reference pages `help()` shows (~0.46 MB).
Both differ slightly between Python versions, so every result records the sha256 of its text.
Collecting the docstrings parses ~600 files (~10 s), so the text is cached on disk under
`$MINILM_CACHE` (default `~/.cache/minilm`), keyed by the Python version.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sys
import sysconfig
import warnings
from dataclasses import dataclass
from pathlib import Path

SKIPPED_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3"}


@dataclass(frozen=True)
class Corpus:
    """A named text with its sha256 (hex) for recording which text a result came from."""

    name: str
    text: str

    @property
    def sha256(self) -> str:
        return sha256(self.text)

    @property
    def n_bytes(self) -> int:
        return len(self.text.encode("utf-8"))

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, {self.n_bytes:,} bytes, sha256={self.sha256[:12]}...)"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("MINILM_CACHE", Path.home() / ".cache" / "minilm"))


def _docstrings_of(path: Path) -> list[str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # old escape sequences in some modules
            tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return []
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [doc for node in ast.walk(tree) if isinstance(node, kinds)
            if (doc := ast.get_docstring(node))]


def _collect_stdlib_docstrings() -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for path in sorted(root.rglob("*.py")):
        if SKIPPED_DIRS.intersection(path.relative_to(root).parts):
            continue
        docs.extend(_docstrings_of(path))
    return "\n\n".join(docs)


def stdlib_docstrings() -> Corpus:
    """The training corpus (cached on disk after the first call)."""
    version = "{}.{}.{}".format(*sys.version_info[:3])
    cached = cache_dir() / f"stdlib-docstrings-{version}.txt"
    if cached.is_file():
        text = cached.read_text(encoding="utf-8")
    else:
        text = _collect_stdlib_docstrings()
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(cached)
        except OSError:
            pass  # a read-only home: recompute next time
    return Corpus("stdlib-docstrings", text)


def language_reference() -> Corpus:
    """The held-out corpus: the topics of `pydoc_data.topics` in sorted order."""
    from pydoc_data.topics import topics

    return Corpus("pydoc-topics", "\n\n".join(topics[key] for key in sorted(topics)))


def load_text(path) -> Corpus:
    """Any UTF-8 text file as a corpus (a clear error if it is missing, empty or not UTF-8)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.start} is invalid); "
                         "convert it first, e.g. with iconv") from None
    if not text:
        raise ValueError(f"corpus file {path} is empty")
    return Corpus(path.name, text)


def train_corpus(path=None) -> Corpus:
    """The training text: a UTF-8 file if `path` is given, else the stdlib docstrings."""
    return load_text(path) if path is not None else stdlib_docstrings()


def validation_corpus() -> Corpus:
    """The held-out text used for every bits/byte figure."""
    return language_reference()
