"""`RestoreCells`: nbgrader's `OverwriteCells` step, made to put back every test cell.

nbgrader 0.9.6 restores the source of a locked cell that a student edited (from the gradebook,
hidden tests included) and, with `add_missing_cells = True`, re-adds a deleted test cell. The
gaps that remain are closed here:

- re-adding a deleted test cell fails with a `KeyError` (and the whole submission with it) when the
  cell before it in the source is missing too (a student deleted an exercise, or submitted the
  notebook of another assignment): a missing cell now goes after the nearest earlier source cell
  the notebook still has, or first. Re-adding task cells fails the same way after a cell with an
  unknown id (another assignment's notebook) lost that id;
- a test cell whose nbgrader metadata was edited (`grade: false`, other points) would not be scored:
  every known cell gets its flags and points back from the gradebook;
- a deleted setup cell (locked code, not graded) is re-added too, so the tests can still run;
- a cell with an id the assignment does not have (another assignment's notebook) loses its nbgrader
  metadata and runs as a plain cell: nbgrader drops only the id and keeps the flags, which then
  fail its metadata check and the whole submission.

nbgrader's "checksum has changed" warning fires for every test cell with hidden tests (the released
cell never matched the source's checksum), so it tells nothing; it is replaced by a
`minilm-grading:` note only when the submitted cell differs from the released one.
"""

from __future__ import annotations

import re

from nbformat.notebooknode import NotebookNode, from_dict
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells
from nbgrader.utils import compute_checksum

from .execute import NOTE


def released_source(source: str, cell_type: str = "code") -> str:
    """The source of a cell as `generate_assignment` releases it (hidden tests removed)."""
    cell = NotebookNode(cell_type=cell_type, source=source, metadata={})
    ClearHiddenTests()._remove_hidden_test_region(cell)
    return cell.source


def _free_id(nb, name: str) -> str:
    """A cell id (nbformat 4.5: [a-zA-Z0-9-_], at most 64) no cell of `nb` has yet."""
    base = re.sub(r"[^a-zA-Z0-9_-]", "-", name)[:50] + "-restored"
    taken = {cell.get("id") for cell in nb.cells}
    names = (f"{base}{n or ''}" for n in range(len(taken) + 2))
    return next(name for name in names if name not in taken)


def _grade_id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


class RestoreCells(OverwriteCells):
    """OverwriteCells that restores test cells whatever the student did to them."""

    def preprocess(self, nb, resources):
        self._layout = None
        self._unknown = []
        nb, resources = super().preprocess(nb, resources)
        if self._unknown:
            self.log.warning("%s cells with ids this assignment does not have ran as plain cells: "
                             "%s", NOTE, ", ".join(self._unknown))
        return nb, resources

    def _source_layout(self):
        """(source cells in notebook order, {grade id: points}, solution ids) of the source."""
        if self._layout is None:
            source_nb = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
            self._layout = (list(source_nb.source_cells),
                            {cell.name: cell.max_score for cell in source_nb.grade_cells},
                            {cell.name for cell in source_nb.solution_cells})
        return self._layout

    def preprocess_cell(self, cell, resources, cell_index):
        grade_id = _grade_id(cell)
        if grade_id is not None:
            try:
                source = self.gradebook.find_source_cell(grade_id, self.notebook_id,
                                                         self.assignment_id)
            except MissingEntry:  # nbgrader would drop the id, keep the flags: invalid metadata
                self._unknown.append(grade_id)
                del cell.metadata["nbgrader"]
                return cell, resources
            self._restore_flags(cell, grade_id, source)
            if source.locked and cell.source != source.source and (
                    cell.source.strip() != released_source(source.source,
                                                           source.cell_type).strip()):
                self.log.warning("%s restored %s (edited in the submission)", NOTE, grade_id)
        return super().preprocess_cell(cell, resources, cell_index)

    def _restore_flags(self, cell, grade_id: str, source) -> None:
        _, points, solutions = self._source_layout()
        meta = cell.metadata.nbgrader
        wanted = {"grade": grade_id in points, "solution": grade_id in solutions,
                  "locked": bool(source.locked)}
        if grade_id in points:
            wanted["points"] = points[grade_id]
        changed = [key for key, value in wanted.items() if meta.get(key) != value]
        if changed:
            self.log.warning("%s restored the nbgrader metadata (%s) of %s", NOTE,
                             ", ".join(changed), grade_id)
            meta.update(wanted)

    def report_change(self, name, attr, old, new):
        if attr != "checksum":  # checksum: see preprocess_cell (this one always fires)
            super().report_change(name, attr, old, new)

    def add_missing_grade_cells(self, nb, resources):
        source_cells, points, solutions = self._source_layout()
        order = [cell.name for cell in source_cells]
        present = {_grade_id(cell) for cell in nb.cells} - {None}
        for position, source in enumerate(source_cells):
            if source.name in present:
                continue
            if source.name in points:
                new = self.missing_cell_transform(source, points[source.name],
                                                  is_solution=source.name in solutions)
            elif source.locked and source.cell_type == "code":
                new = self._missing_locked_cell(source)
            else:
                continue
            where = 0
            for earlier in reversed(order[:position]):
                index = next((i for i, cell in enumerate(nb.cells)
                              if _grade_id(cell) == earlier), None)
                if index is not None:
                    where = index + 1
                    break
            if nb.get("nbformat_minor", 0) >= 5:  # cell ids exist from nbformat 4.5 on
                new["id"] = _free_id(nb, source.name)
            nb.cells.insert(where, new)
            present.add(source.name)
            self.log.warning("%s re-added %s (missing from the submission)", NOTE, source.name)
        return nb, resources

    def add_missing_task_cells(self, nb, resources):
        # nbgrader's version fails (KeyError) on the cells whose unknown id it just dropped
        source_nb = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        by_name = {cell.name: cell for cell in source_nb.source_cells}
        present = {_grade_id(cell) for cell in nb.cells}
        for task in source_nb.task_cells:
            if task.name not in present and task.name in by_name:
                new = self.missing_cell_transform(by_name[task.name], task.max_score, is_task=True)
                if nb.get("nbformat_minor", 0) >= 5:
                    new["id"] = _free_id(nb, task.name)
                nb.cells.append(new)
                self.log.warning("%s re-added %s (missing from the submission)", NOTE, task.name)
        return nb, resources

    def _missing_locked_cell(self, source) -> NotebookNode:
        note = self.missing_cell_notification.format(cell_id=source.name)
        cell = from_dict({
            "cell_type": "code", "execution_count": None, "outputs": [],
            "source": "# " + note + source.source,
            "metadata": {"deletable": False, "editable": False, "nbgrader": {
                "grade": False, "solution": False, "locked": True, "task": False,
                "grade_id": source.name, "schema_version": 3}}})
        cell.metadata.nbgrader["checksum"] = compute_checksum(cell)
        return cell
