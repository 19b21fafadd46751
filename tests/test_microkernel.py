"""The 6 x 16 register-tile micro-kernel against NumPy, in the layouts attention uses."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from minilm.kernels.microkernel import COLS, ROWS, tile_product

F = 4  # bytes per float32


@njit
def _tile(a, a_row, a_step, b, b_step, steps, c, c_row, accumulate):
    tile_product(a.ctypes.data, a_row * F, a_step * F, b.ctypes.data, b_step * F, steps,
                 c.ctypes.data, c_row * F, accumulate)


def _close(out, ref):
    assert np.all(np.abs(out - ref) <= 1e-5 + 1e-5 * np.abs(ref)), np.abs(out - ref).max()


@pytest.mark.parametrize("steps", [0, 1, 7, 32, 257])
@pytest.mark.parametrize("accumulate", [0, 1])
def test_tile_product_row_major(steps, accumulate):
    rng = np.random.default_rng(steps)
    a = rng.standard_normal((ROWS, steps + 3), dtype=np.float32)  # rows longer than the steps
    b = rng.standard_normal((steps, COLS + 5), dtype=np.float32)  # B[s] is the start of a row
    c = rng.standard_normal((ROWS, COLS + 2), dtype=np.float32)
    expected = a[:, :steps].astype(np.float64) @ b[:, :COLS] + (c[:, :COLS] if accumulate else 0)
    rest = c[:, COLS:].copy()
    _tile(a, a.shape[1], 1, b, b.shape[1], steps, c, c.shape[1], accumulate)
    _close(c[:, :COLS], expected)
    assert np.array_equal(c[:, COLS:], rest)  # nothing written past the tile


def test_tile_product_transposed_a():
    """d_k += d_s^T q: A[r, s] = d_s[s, r], the same array with its two strides swapped."""
    rng = np.random.default_rng(0)
    d_s = rng.standard_normal((40, 9), dtype=np.float32)  # (steps, >= ROWS)
    q = rng.standard_normal((40, COLS), dtype=np.float32)
    c = np.zeros((ROWS, COLS), np.float32)
    _tile(d_s, 1, d_s.shape[1], q, COLS, 40, c, COLS, 0)
    _close(c, d_s[:, :ROWS].T.astype(np.float64) @ q)
