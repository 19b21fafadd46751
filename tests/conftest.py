"""Shared fixtures: seeded generators and the tolerance check `atol + rtol*|ref|`."""

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
