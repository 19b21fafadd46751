"""The `minilm` command: help everywhere, one-line errors, generate and bench."""

import subprocess
import sys

import pytest


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "minilm", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("args", [["--help"], ["info", "--help"], ["generate", "--help"],
                                  ["bench", "--help"], ["course", "--help"], ["train", "--help"],
                                  ["baselines", "--help"], ["quantize", "--help"],
                                  ["models", "--help"], ["scaling", "--help"]])
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
    (["quantize", "no-such-model", "-o", "x.npz"], "no model named"),
    (["quantize", "m", "--dtype", "bf16", "-o", "x.npz"], "dtype"),
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


def test_bench_training_step_compares_numba_with_numpy():
    result = run("bench", "train", "--quick")
    assert result.returncode == 0, result.stderr
    assert "train step minilm-s" in result.stdout and "tok/s" in result.stdout


def test_bench_decodes_the_largest_model_in_float32_and_4_bits():
    result = run("bench", "kbit-decode", "--quick")
    assert result.returncode == 0, result.stderr
    assert "float32" in result.stdout and "4-bit nf" in result.stdout


def test_models_lists_the_family_with_its_records():
    from minilm.family import TRAINING_PRESETS

    result = run("models", "--commands")
    assert result.returncode == 0, result.stderr
    for name in TRAINING_PRESETS:
        assert f"{name}: minilm train --preset {name}" in result.stdout


def test_quantize_saves_a_smaller_model_that_generates(tmp_path):
    import minilm

    config = minilm.ModelConfig(d_model=64, n_heads=2, n_layers=2, d_ff=256, max_seq_len=64)
    source = minilm.MiniLM.init(config, seed=0).save(tmp_path / "m.npz")
    result = run("quantize", str(source), "--bits", "4", "--eval-bytes", "2000",
                 "-o", str(tmp_path / "q4.npz"))
    assert result.returncode == 0, result.stderr
    assert "4-bit nf" in result.stdout and "bits/byte" in result.stdout
    assert (tmp_path / "q4.npz").stat().st_size < 0.5 * source.stat().st_size
    bad = run("quantize", str(source), "--bits", "9", "-o", str(tmp_path / "q.npz"))
    assert bad.returncode == 2 and "bits" in bad.stderr
    generated = run("generate", "Hi", "--model", str(tmp_path / "q4.npz"),
                    "--max-new-tokens", "5")
    assert generated.returncode == 0, generated.stderr


def test_course_starts_jupyterlab_on_the_course_folder():
    import json
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "minilm", "course", "--no-browser",
                               "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for loopback
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with direct.open(f"http://127.0.0.1:{port}/api", timeout=2) as reply:
                    assert "version" in json.loads(reply.read())
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("JupyterLab did not answer within 90 s")
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "course" in output
