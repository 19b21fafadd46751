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
  fail its metadata check and the whole submission;
- a grade id that two cells carry (a student copied a test cell): nbgrader's `DeduplicateIds`, the
  step before this one, keeps the last of them and empties the nbgrader metadata of the others,
  which then fails the metadata check and the whole submission. Those copies lose the metadata
  and run as plain cells; the cell that kept the id is put in its place by the next point;
- a test cell out of the source's order (dragged above its solution, so it ran before the function
  existed, or below the next exercise) goes back right below the last source cell of its exercise.

A notebook of format 3 or older is converted to format 4 when nbgrader reads it (nbformat's
converter, in nbconvert's reader); it gets a note.

nbgrader's "checksum has changed" warning fires for every test cell with hidden tests (the released
cell never matched the source's checksum), so it tells nothing; it is replaced by a
`minilm-grading:` note only when the submitted cell differs from the released one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


@dataclass
class SourceLayout:
    """The assignment's notebook as the gradebook has it."""
    cells: list  # its source cells in notebook order (gradebook rows: read while it is open)
    order: list[str]  # their grade ids
    points: dict[str, float]  # {grade id: points} of the graded cells
    solutions: set[str]  # grade ids of the solution cells

    def exercise_of(self, test: str) -> list[str]:
        """The source cells between the previous test cell and test cell `test`: its task and
        solution (for the first test, the intro and setup too), in order."""
        position = self.order.index(test)
        start = max((i + 1 for i, name in enumerate(self.order[:position])
                     if self.is_test(name)), default=0)
        return self.order[start:position]

    def is_test(self, name: str) -> bool:
        return name in self.points and name not in self.solutions


class RestoreCells(OverwriteCells):
    """OverwriteCells that restores test cells whatever the student did to them."""

    def preprocess(self, nb, resources):
        self._layout = None
        self._unknown = []
        if nb.metadata.get("orig_nbformat", 4) < 4:
            self.log.warning("%s converted from notebook format %s to 4 (nbformat's converter)",
                             NOTE, nb.metadata.orig_nbformat)
        self._drop_duplicate_metadata(nb)
        nb, resources = super().preprocess(nb, resources)
        if self._unknown:
            self.log.warning("%s cells with ids this assignment does not have ran as plain cells: "
                             "%s", NOTE, ", ".join(self._unknown))
        self._put_tests_in_order(nb)
        return nb, resources

    def _source_layout(self) -> SourceLayout:
        """The source notebook (read from the gradebook on first use, which must be open)."""
        if self._layout is None:
            source_nb = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
            cells = list(source_nb.source_cells)
            self._layout = SourceLayout(
                cells, [cell.name for cell in cells],
                {cell.name: cell.max_score for cell in source_nb.grade_cells},
                {cell.name for cell in source_nb.solution_cells})
        return self._layout

    def _drop_duplicate_metadata(self, nb) -> None:
        """Cells whose nbgrader metadata DeduplicateIds emptied (copies of a cell whose grade id
        a later cell kept) run as plain cells; nbgrader's metadata check fails on them."""
        kept = {cell.source.strip(): _grade_id(cell) for cell in nb.cells if _grade_id(cell)}
        for index, cell in enumerate(nb.cells):
            if "nbgrader" in cell.metadata and not cell.metadata.nbgrader:
                del cell.metadata["nbgrader"]
                self.log.warning("%s %s was in the notebook more than once: the one in cell %d "
                                 "ran as a plain cell", NOTE,
                                 kept.get(cell.source.strip(), "a grade id"), index + 1)

    def _put_tests_in_order(self, nb) -> None:
        """Test cells above a source cell of their exercise, or below the source cell that
        follows them, go right below the last source cell of their exercise."""
        if self._layout is None:  # no cell of this assignment in the notebook: nothing to order
            return
        layout = self._layout
        for test in filter(layout.is_test, layout.order):
            where = {_grade_id(cell): i for i, cell in enumerate(nb.cells) if _grade_id(cell)}
            own = [name for name in layout.exercise_of(test) if name in where]
            following = layout.order[layout.order.index(test) + 1:]
            after = next((where[name] for name in following if name in where), len(nb.cells))
            if test not in where or not own:
                continue
            here, anchor = where[test], max(own, key=where.get)
            target = where[anchor] if here < where[anchor] else where[anchor] + 1
            if where[anchor] < here < after or target == here:
                continue
            nb.cells.insert(target, nb.cells.pop(here))
            self.log.warning("%s moved %s back below %s%s", NOTE, test,
                             "its solution " if anchor in layout.solutions else "", anchor)

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
        layout = self._source_layout()
        points, solutions = layout.points, layout.solutions
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
        layout = self._source_layout()
        source_cells, order, points, solutions = (layout.cells, layout.order, layout.points,
                                                  layout.solutions)
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
