"""Exercises and grading: the machinery around nbgrader (the exercises themselves live in
`solutions/`, their release in `exercises/`).

    config    the course's nbgrader settings (`nbgrader_config.py` calls `configure`), Isolation
    sandbox   each submission's kernel in a bubblewrap sandbox (SandboxKernelManager, Limits)
    execute   ResilientExecute: restarts a stuck or dead kernel, caps output and notebook time
    scoring   each test cell scored outside the student's process: record, then replay
    recorder  (in the student's kernel) the record of the student's calls in a test cell
    replay    (in the checker) the student's functions answered from that record
    checker   the grader's process that runs the test cells and decides their scores
    wire      values between the two as plain data (no pickle), and argument fingerprints
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
    notebook_tools  what the exercise notebooks' test cells share (speed_ratio, facts about
              the student's functions: is_numba_function, numba_options, parallel_loops)

Importing this package imports nothing heavy; nbgrader is imported when grading starts.
"""
