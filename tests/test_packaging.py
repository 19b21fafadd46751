"""Install metadata: pyproject and environment.yml agree; importing minilm compiles nothing."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    assert conda == wanted
    pip_part = [d for d in env["dependencies"] if isinstance(d, dict)][0]["pip"]
    assert any("-e" in line or "--editable" in line for line in pip_part)


def test_pytest_markers_and_console_script():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    markers = " ".join(config["tool"]["pytest"]["ini_options"]["markers"])
    for marker in ("slow", "cuda", "notebooks", "browser"):
        assert f"{marker}:" in markers
    assert config["project"]["scripts"]["minilm"] == "minilm.cli:main"


def test_nbgrader_config_directories():
    """The repository root is an nbgrader course: solutions/ is the source, exercises/ the
    release (the settings come from minilm.grading.config)."""
    from traitlets.config import Config

    config = Config()
    text = (ROOT / "nbgrader_config.py").read_text()
    exec(compile(text, "nbgrader_config.py", "exec"), {"get_config": lambda: config})
    assert config.CourseDirectory.source_directory == "solutions"
    assert config.CourseDirectory.release_directory == "exercises"


def test_import_loads_neither_numba_nor_cuda():
    code = ("import sys, minilm; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('numba', 'llvmlite', 'cuda', 'numba_cuda')]; print(bad); assert not bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "minilm", "tests"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout
