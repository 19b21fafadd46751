"""The CUDA backend from the main test run: the kernel tests of tests/cuda/ in Numba's CUDA
simulator (a subprocess, because the simulator must be switched on before numba is imported),
and the clear error when there is neither a GPU nor the simulator."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, simulator: bool, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
                    reason="this run has the simulator on: tests/cuda ran in this process")
def test_cuda_kernels_in_the_simulator():
    command = [sys.executable, "-m", "pytest", "tests/cuda", "-q", "-p", "no:cacheprovider",
               "-x", "--no-header"]
    result = subprocess.run(command, env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}, cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    summary = result.stdout.strip().splitlines()[-1:] or ["no output"]
    assert result.returncode == 0, (
        f"the CUDA simulator tests failed ({summary[0]}); rerun them with "
        f"`NUMBA_ENABLE_CUDASIM=1 pytest tests/cuda`:\n{result.stdout[-6000:]}{result.stderr}")
    assert " passed" in summary[0] and "skipped" not in summary[0], summary[0]


NO_DEVICE_SCRIPT = """
import os
import numpy as np
import minilm
from minilm import kbit
from minilm.kernels.cuda import CudaUnavailableError, describe, device
if device.gpu_name():
    print("HAS GPU")
    raise SystemExit
model = minilm.MiniLM.init(minilm.ModelConfig(vocab_size=16, d_model=16, n_heads=2,
                                              n_layers=1, d_ff=32, max_seq_len=8))
qt = kbit.quantize(np.ones((4, 16), np.float32), 4, "nf", 16)
calls = {"forward": lambda: model.forward(np.array([1, 2]), backend="cuda"),
         "generate": lambda: minilm.generate(model, "", 2, backend="cuda"),
         "kbit.matmul": lambda: kbit.matmul(np.ones(16, np.float32), qt, backend="cuda"),
         "kbit.pack": lambda: kbit.pack(np.ones(16, np.uint8), 3, backend="cuda"),
         "softmax": lambda: minilm.kernels.cuda.softmax(np.ones(3, np.float32))}
for name, call in calls.items():
    try:
        call()
    except CudaUnavailableError as error:
        assert isinstance(error, NotImplementedError)  # the CLI prints it as one line
        assert "NUMBA_ENABLE_CUDASIM=1" in str(error) and "before numba" in str(error), error
    else:
        raise AssertionError(f"{name} ran without a GPU or the simulator")
assert describe().startswith("unavailable")
os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # too late: numba is imported
try:
    minilm.kernels.cuda.require()
except CudaUnavailableError as error:
    assert "only after numba was imported" in str(error), error
print("OK")
"""


def test_no_gpu_and_no_simulator_is_a_clear_error():
    result = run_python(NO_DEVICE_SCRIPT, simulator=False)
    if "HAS GPU" in result.stdout:
        pytest.skip("this machine has a CUDA GPU")
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr


def test_info_says_what_the_cuda_backend_runs_on():
    on = {sim: run_python("from minilm.cli import main; main(['info'])", simulator=sim)
          for sim in (True, False)}
    assert "cuda backend: Numba CUDA simulator" in on[True].stdout, on[True].stderr
    assert "cuda backend: " in on[False].stdout, on[False].stderr
