"""Feedback without the hidden tests: what `generate_feedback` shows a student.

The feedback HTML that nbgrader writes from a graded notebook shows every test cell as it ran,
hidden tests included, and the tracebacks of failed checks quote their lines. The course config
(`config.configure`) swaps nbgrader's `ClearHiddenTests`-less feedback steps for ones with
`FeedbackWithoutHiddenTests`: each test cell keeps its visible tests and the message of every
failed check, and loses the hidden tests and the lines of them a traceback quotes.
"""

from __future__ import annotations

import re

from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests

from .check import ANSI

CELL_FRAME = re.compile(r"(?:Cell|Input) In ?\[(?P<count>\d+)\]")  # IPython 8's frame of a cell
QUOTED_LINE = re.compile(r"(?P<arrow>-*>)?\s*(?P<number>\d+)\s")  # "----> 6 code", "      5 code"


class FeedbackWithoutHiddenTests(ClearHiddenTests):
    """nbgrader's ClearHiddenTests for the feedback of a graded notebook: each test cell loses its
    hidden tests, and its error outputs the lines of them that a traceback quotes (the frame of
    the cell itself); the failing line of a hidden test shows as "(a hidden test)". The message
    of every failed check stays. The student's kernel ran the hidden tests too, so a line of
    them that a student's cell printed (its code could read the test cell while it ran) is
    taken out of every other output as well."""

    def preprocess(self, nb, resources):
        secret = {line.strip() for cell in nb.cells if utils.is_grade(cell)
                  for number, line in enumerate(cell.source.split("\n"), 1)
                  if number in self._hidden_lines(cell.source) and len(line.strip()) >= 12}
        nb, resources = super().preprocess(nb, resources)
        for cell in nb.cells:
            for output in cell.get("outputs", []) if not utils.is_grade(cell) else []:
                _redact(output, secret)
        return nb, resources

    def preprocess_cell(self, cell, resources, cell_index):
        if not utils.is_grade(cell):  # only test cells hold hidden tests
            return cell, resources
        hidden = self._hidden_lines(cell.source)
        for output in cell.get("outputs", []):
            if output.output_type == "error" and hidden:
                output.traceback = [_without_lines(entry, hidden, cell.execution_count)
                                    for entry in output.traceback]
        self._remove_hidden_test_region(cell)
        return cell, resources

    def _hidden_lines(self, source: str) -> set[int]:
        """Numbers (from 1) of the lines of `source` from BEGIN to END HIDDEN TESTS."""
        hidden, inside = set(), False
        for number, line in enumerate(source.split("\n"), 1):
            inside = inside or self.begin_test_delimeter in line
            if inside:
                hidden.add(number)
            inside = inside and self.end_test_delimeter not in line
        return hidden


def _redact(output, secret: set[str]) -> None:
    """Every line of `secret` taken out of an output's text."""
    def clean(text: str) -> str:
        for line in secret:
            text = text.replace(line, "(a hidden test)")
        return text

    if "text" in output:
        output.text = clean(output.text)
    for mime, value in output.get("data", {}).items():
        if isinstance(value, str) and mime.startswith("text/"):
            output.data[mime] = clean(value)
    if output.get("output_type") == "error":
        output.evalue = clean(output.evalue)
        output.traceback = [clean(entry) for entry in output.traceback]


def _without_lines(entry: str, numbers: set[int], count) -> str:
    """A traceback entry without the quoted lines `numbers` when it is the frame of the cell
    that ran as execution `count`."""
    lines = entry.split("\n")
    frame = CELL_FRAME.match(ANSI.sub("", lines[0]))
    if not frame or frame["count"] != str(count):
        return entry
    kept = []
    for line in lines:
        quoted = QUOTED_LINE.match(ANSI.sub("", line))
        if not quoted or int(quoted["number"]) not in numbers:
            kept.append(line)
        elif quoted["arrow"]:
            kept.append(f"{quoted['arrow']} {quoted['number']} (a hidden test)")
    return "\n".join(kept)
