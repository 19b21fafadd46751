"""nbgrader settings for the minilm course (run nbgrader commands from the repository root).

solutions/  the source notebooks: exercises with solutions and hidden tests (instructors edit)
exercises/  the release notebooks students get: made by `nbgrader generate_assignment`
"""

c = get_config()  # noqa: F821  (provided by nbgrader when it reads this file)

c.CourseDirectory.root = "."
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
