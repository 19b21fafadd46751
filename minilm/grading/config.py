"""The nbgrader settings of the minilm course, written once and used everywhere.

The repository's `nbgrader_config.py` calls `configure(get_config())`, and so does every temporary
course directory that `minilm check`, `minilm grade` and `minilm exercises` make, so the `nbgrader`
command and the `minilm` commands grade with exactly the same settings:

- `Execute.timeout`: 120 s per cell. nbgrader's default (30 s) is too short for a first call that
  compiles a Numba kernel on a busy machine, and a loop that never ends costs this much per cell.
- the cell that runs student code is `ResilientExecute` (a subclass of nbgrader's `Execute`): when
  the timeout's interrupt does not bring the kernel back (a loop inside an `@njit` function ignores
  it) or the kernel dies, it records an error in that cell, restarts the kernel, replays the cells
  before it and goes on, so the other exercises are still graded; it also caps huge output.
- the sanitizing step uses `RestoreCells` (a subclass of nbgrader's `OverwriteCells`) with
  `add_missing_cells = True`: test cells that a student edited, deleted or re-labelled are put
  back from the gradebook (hidden tests included), and a deleted setup cell too.
- `LimitOutput` keeps at most 500 lines of printed output and 100 traceback lines per cell.
- the kernel runs in a bubblewrap sandbox (`sandbox.SandboxKernelManager`, with `sandbox.Limits`)
  wherever one can run (`Isolation`); `ResilientExecute.notebook_timeout` caps the whole
  notebook's run time.
- feedback (`generate_feedback`) leaves out the hidden tests
  (`feedback.FeedbackWithoutHiddenTests`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

EXECUTE_TIMEOUT = 120  # seconds per cell (first-call Numba compiles on 2 busy cores fit easily)
NOTEBOOK_TIMEOUT = 600  # seconds for a whole notebook, restarts included (solutions need ~1 min)
MAX_OUTPUT_LINES = 500  # printed lines kept per cell in the graded notebook (LimitOutput)
MAX_TRACEBACK_LINES = 100  # traceback lines kept per error
MAX_OUTPUT_CHARS = 200_000  # output characters received per cell before the rest is dropped
SOURCE_DIRECTORY = "solutions"  # nbgrader source directory: notebooks with solutions and tests
RELEASE_DIRECTORY = "exercises"  # nbgrader release directory: what students get


class SandboxUnavailable(RuntimeError):
    """A sandbox was asked for where none can run (the message says why and what to do)."""


@dataclass(frozen=True)
class Isolation:
    """How submissions run. `sandbox`: True, each kernel in the bubblewrap sandbox (else
    SandboxUnavailable); False, without one (`--unsafe`); None, in the sandbox wherever one can
    run. `limits`: a `sandbox.Limits` (None: its defaults). `notebook_timeout`: seconds for a
    whole notebook (None: NOTEBOOK_TIMEOUT)."""
    sandbox: bool | None = None
    limits: object = None
    notebook_timeout: float | None = None

    def apply(self, c) -> bool:
        """Set these on the nbgrader config `c`; whether the kernels will be sandboxed."""
        if self.notebook_timeout is not None:
            c.ResilientExecute.notebook_timeout = int(self.notebook_timeout)
        if self.limits is not None:
            c.SandboxKernelManager.limits = asdict(self.limits)
        problem = None
        if self.sandbox is not False:
            from .sandbox import sandbox_problem

            problem = sandbox_problem()
            if problem and self.sandbox:
                raise SandboxUnavailable(problem)
        sandboxed = self.sandbox is not False and not problem
        c.Execute.kernel_manager_class = (
            "minilm.grading.sandbox.SandboxKernelManager" if sandboxed
            else "jupyter_client.manager.AsyncKernelManager")
        return sandboxed


def configure(c, *, timeout: float | None = None, isolation: Isolation | None = None):
    """Fill the nbgrader config object `c` (a traitlets Config) with the course settings and
    return it. `timeout` overrides `Execute.timeout` (seconds per cell); `isolation` says how the
    kernels run (default: sandboxed wherever a sandbox can run)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        GetGrades,
        IgnorePattern,
        LimitOutput,
        OverwriteKernelspec,
        SaveAutoGrades,
    )

    from .execute import ResilientExecute
    from .feedback import FeedbackWithoutHiddenTests
    from .restore import RestoreCells

    c.CourseDirectory.source_directory = SOURCE_DIRECTORY
    c.CourseDirectory.release_directory = RELEASE_DIRECTORY
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

    c.Execute.timeout = int(timeout if timeout is not None else EXECUTE_TIMEOUT)
    c.Execute.interrupt_on_timeout = True
    c.ResilientExecute.max_output_chars = MAX_OUTPUT_CHARS
    c.ResilientExecute.notebook_timeout = NOTEBOOK_TIMEOUT
    (isolation or Isolation()).apply(c)
    c.OverwriteCells.add_missing_cells = True
    c.LimitOutput.max_lines = MAX_OUTPUT_LINES
    c.LimitOutput.max_traceback = MAX_TRACEBACK_LINES

    # nbgrader's own lists (0.9.6), with the two steps above swapped in
    c.Autograde.sanitize_preprocessors = [
        ClearOutput, DeduplicateIds, OverwriteKernelspec, RestoreCells, CheckCellMetadata]
    c.Autograde.autograde_preprocessors = [
        ResilientExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
        AssignLatePenalties, CheckCellMetadata]
    # nbgrader's list (0.9.6), with the hidden tests taken out
    c.GenerateFeedback.preprocessors = [
        GetGrades, FeedbackWithoutHiddenTests, CSSHTMLHeaderPreprocessor]
    return c


def config_file_text(timeout: float | None = None) -> str:
    """The `nbgrader_config.py` of a temporary course directory (same settings as the repo's)."""
    argument = "" if timeout is None else f", timeout={timeout!r}"
    return ('"""nbgrader settings of a temporary minilm course directory."""\n\n'
            "from minilm.grading.config import configure\n\n"
            f"configure(get_config(){argument})  # noqa: F821\n")
