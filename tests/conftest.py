"""Shared fixtures: seeded generators, the tolerance check `atol + rtol*|ref|`, and the
`cuda` marker and device check of tests/cuda."""

from pathlib import Path

import numpy as np
import pytest


def assert_close(out, ref, atol=1e-5, rtol=1e-4):
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    assert out.shape == ref.shape, f"shape {out.shape} != reference {ref.shape}"
    err = np.abs(out - ref)
    bound = atol + rtol * np.abs(ref)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert np.all(err <= bound), (
        f"max |out-ref| = {err.max():.3g}; at {worst}: out={out[worst]:.6g} ref={ref[worst]:.6g}")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


CUDA_TESTS = Path(__file__).parent / "cuda"


def pytest_collection_modifyitems(config, items):
    """tests/cuda needs a device: a real GPU (`pytest -m cuda`) or Numba's CUDA simulator, which
    must be on before numba is imported, so tests/test_cuda_simulator.py runs that folder in a
    fresh Python with NUMBA_ENABLE_CUDASIM=1. Without either they are skipped. The simulator
    runs one OS thread per CUDA thread: keep shapes tiny (<= 32 per side, a few blocks) and
    include sizes that are not multiples of the block and tile sizes."""
    cuda_items = [item for item in items if CUDA_TESTS in item.path.parents]
    if not cuda_items:
        return
    import numba

    from minilm.kernels.cuda.device import gpu_name

    no_device = not numba.config.ENABLE_CUDASIM and gpu_name() is None
    skip = pytest.mark.skip(reason="needs a CUDA GPU, or the simulator (tests/test_cuda_simulator"
                                   ".py runs these with NUMBA_ENABLE_CUDASIM=1)")
    for item in cuda_items:
        item.add_marker(pytest.mark.cuda)
        if no_device:
            item.add_marker(skip)
