"""Exercises and grading: the machinery around nbgrader (the exercises themselves live in
`solutions/`, their release in `exercises/`).

    config    the course's nbgrader settings (`nbgrader_config.py` calls `configure`)
    execute   ResilientExecute: restarts a stuck or dead kernel, caps huge output
    restore   RestoreCells: puts back edited, deleted or re-labelled test cells
    course    finding assignments; reading and identifying a submitted notebook
    runner    nbgrader's converters run in this process; scores from the gradebook
    release   exercises/ generated from solutions/ (and checked)
    check     `minilm check NOTEBOOK`: a student's self-check with the hidden tests
    parallel  `minilm grade ASSIGNMENT --workers N`: a whole class, in parallel
    cli       the `check`, `grade` and `exercises` subcommands
    notebook_tools  what the exercise notebooks' test cells share (parallel_loops, ...)

Importing this package imports nothing heavy; nbgrader is imported when grading starts.
"""
