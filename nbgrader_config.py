"""nbgrader settings for the minilm course (run nbgrader commands from the repository root).

solutions/  the source notebooks: exercises with solutions and hidden tests (instructors edit)
exercises/  the release notebooks students get: made by `nbgrader generate_assignment`
            (or `minilm exercises`, which runs it in a temporary folder)

The settings themselves (per-cell timeout, restored test cells, a kernel restart after a loop that
ignores the interrupt, output limits) are in `minilm/grading/config.py`, so that `minilm check`
and `minilm grade` use exactly the same ones.
"""

from minilm.grading.config import configure

c = get_config()  # noqa: F821  (provided by nbgrader when it reads this file)
configure(c)
