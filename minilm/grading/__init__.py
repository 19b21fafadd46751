"""Exercises and grading: the machinery around nbgrader (the exercises themselves live in
`solutions/`, their release in `exercises/`).

    config    the course's nbgrader settings (`nbgrader_config.py` calls `configure`), Isolation
    sandbox   each submission's kernel in a bubblewrap sandbox (SandboxKernelManager, Limits)
    execute   ResilientExecute: restarts a stuck or dead kernel, caps output and notebook time
    restore   RestoreCells: puts back edited, deleted, copied, moved or re-labelled test cells
    feedback  FeedbackWithoutHiddenTests: what generate_feedback shows a student
    course    finding assignments and their tests; reading and identifying a submitted notebook
    runner    nbgrader's converters run in this process; scores from the gradebook
    release   exercises/ generated from solutions/ (and checked)
    check     `minilm check NOTEBOOK`: a student's self-check
    parallel  `minilm grade ASSIGNMENT --workers N`: a whole class, in parallel, resumable
    records   each student's result, its record (for resuming) and the class CSV
    bundle    `minilm bundle --out DIR`: the course for students, without the solutions
    cli       the `check`, `grade`, `exercises` and `bundle` subcommands
    notebook_tools  what the exercise notebooks' test cells share (parallel_loops, speed_ratio)

Importing this package imports nothing heavy; nbgrader is imported when grading starts.
"""
