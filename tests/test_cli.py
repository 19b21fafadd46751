"""The `minilm` command: help everywhere, one-line errors, generate and bench."""

import subprocess
import sys

import pytest


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "minilm", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("args", [["--help"], ["info", "--help"], ["generate", "--help"],
                                  ["bench", "--help"], ["course", "--help"]])
def test_help(args):
    result = run(*args)
    assert result.returncode == 0 and "usage" in result.stdout


def test_info():
    result = run("info")
    assert result.returncode == 0, result.stderr
    for words in ("numba", "cpu threads", "gpu:", "cuda simulator: works"):
        assert words in result.stdout


def test_generate_streams_text():
    result = run("generate", "Hello", "--max-new-tokens", "12", "--seed", "1",
                 "--temperature", "0.5", "--top-k", "20")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Hello") and len(result.stdout) > len("Hello")
    again = run("generate", "Hello", "--max-new-tokens", "12", "--seed", "1",
                "--temperature", "0.5", "--top-k", "20")
    assert again.stdout == result.stdout


@pytest.mark.parametrize("args, words", [
    (["generate"], "required"),
    (["generate", "x", "--top-k", "0"], "top-k"),
    (["generate", "x", "--temperature", "-1"], "temperature"),
    (["generate", "x", "--max-new-tokens", "many"], "max-new-tokens"),
    (["generate", "x", "--model", "no-such-model"], "no model named"),
    (["generate", "x", "--backend", "tpu"], "backend"),
    (["bench", "nope"], "unknown benchmark"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_exit_nonzero_with_one_line(args, words):
    result = run(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr


def test_bench_one_case_checks_then_times():
    result = run("bench", "ffn", "--quick")
    assert result.returncode == 0, result.stderr
    assert "numpy reference" in result.stdout and "GFLOP/s" in result.stdout
