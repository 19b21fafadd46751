"""kbit.pack / kbit.unpack: round trips, the exact bytes of DESIGN.md's layout, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minilm import kbit
from minilm.kbit import pack_kernels
from minilm.kbit.pack import code_at, group_code, read_group

BACKENDS = ["reference", "cpu"]


@st.composite
def codes_and_bits(draw, max_size=300):
    bits = draw(st.integers(1, 8))
    values = draw(st.lists(st.integers(0, 2**bits - 1), max_size=max_size))
    return np.array(values, np.uint8), bits


@settings(max_examples=300, deadline=None)
@given(codes_and_bits())
def test_round_trip_every_bits_and_length(case):
    codes, bits = case
    packed = kbit.pack(codes, bits)
    assert packed.dtype == np.uint8 and packed.size == (codes.size * bits + 7) // 8
    assert np.array_equal(packed, kbit.pack_reference(codes, bits))
    for backend in BACKENDS:
        assert np.array_equal(kbit.unpack(packed, bits, codes.size, backend=backend), codes)


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("n", [64, 64 * 5 + 13, 4096 + 7])
@pytest.mark.parametrize("parallel", [False, True])
def test_kernels_match_reference_on_long_inputs(rng, monkeypatch, bits, n, parallel):
    monkeypatch.setattr(pack_kernels, "PARALLEL_MIN", 0 if parallel else 2**40)
    codes = rng.integers(0, 2**bits, n, dtype=np.uint8)
    packed = kbit.pack(codes, bits)
    assert np.array_equal(packed, kbit.pack_reference(codes, bits))
    assert np.array_equal(kbit.unpack(packed, bits, n), codes)
    out = np.zeros(n, np.uint8)
    assert kbit.unpack(packed, bits, n, out=out) is out and np.array_equal(out, codes)


HAND_WORKED = [  # (bits, codes, bytes) worked out bit by bit from the layout in DESIGN.md
    (1, [1, 0, 1, 1, 0, 0, 0, 1, 1], [0b10001101, 0b00000001]),
    (3, [5, 3, 6, 1, 7, 0, 2, 4], [0x9D, 0x73, 0x88]),  # c0|c1<<3|(c2&3)<<6, ...
    (3, [7, 7, 7], [0xFF, 0x01]),
    (4, [1, 2, 3, 4, 5], [0x21, 0x43, 0x05]),  # byte j = code[2j] | code[2j+1] << 4
    (5, [31, 1, 2], [0x3F, 0x08]),  # stream bits 0-4: 31, bit 5: 1, bit 11: 1
    (8, [0, 255, 17], [0, 255, 17]),
]


@pytest.mark.parametrize("bits, codes, expected", HAND_WORKED)
@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_bytes(bits, codes, expected, backend):
    codes = np.array(codes, np.uint8)
    packed = kbit.pack(codes, bits, backend=backend)
    assert packed.tolist() == expected
    assert kbit.unpack(packed, bits, len(codes), backend=backend).tolist() == codes.tolist()


@settings(max_examples=100, deadline=None)
@given(codes_and_bits())
def test_unused_trailing_bits_are_zero(case):
    codes, bits = case
    used = codes.size * bits % 8
    if used:
        full = np.full(codes.size, 2**bits - 1, np.uint8)  # every used bit is 1
        assert kbit.pack(full, bits)[-1] == 2**used - 1
        assert kbit.pack(codes, bits)[-1] >> used == 0


def test_empty_input():
    assert kbit.pack(np.zeros(0, np.uint8), 3).size == 0
    assert kbit.unpack(np.zeros(0, np.uint8), 3, 0).size == 0


@pytest.mark.parametrize("bits", [0, 9, -1])
def test_bits_outside_1_to_8(bits):
    with pytest.raises(ValueError, match="bits must be in 1..8"):
        kbit.pack(np.zeros(4, np.uint8), bits)
    with pytest.raises(ValueError, match="bits must be in 1..8"):
        kbit.unpack(np.zeros(4, np.uint8), bits, 4)


def test_bad_codes():
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 8\)"):
        kbit.pack(np.array([1, 8], np.uint8), 3)
    with pytest.raises(TypeError, match="codes must have dtype uint8"):
        kbit.pack(np.array([1, 2], np.int64), 3)
    with pytest.raises(TypeError, match="codes must be a numpy.ndarray"):
        kbit.pack([1, 2], 3)
    with pytest.raises(ValueError, match="codes must be 1-D"):
        kbit.pack(np.zeros((2, 2), np.uint8), 3)
    with pytest.raises(TypeError, match="bits must be an int"):
        kbit.pack(np.zeros(2, np.uint8), 3.0)


def test_bad_packed():
    with pytest.raises(ValueError, match="packed must hold ceil"):
        kbit.unpack(np.zeros(3, np.uint8), 4, 8)
    with pytest.raises(TypeError, match="packed must be a 1-D uint8"):
        kbit.unpack(np.zeros(4, np.int8), 4, 8)
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        kbit.unpack(np.zeros(4, np.uint8), 4, -1)
    with pytest.raises(ValueError, match="unknown backend"):
        kbit.unpack(np.zeros(4, np.uint8), 4, 8, backend="gpu")
    with pytest.raises(ValueError, match=r"out must be a C-contiguous uint8 array of shape \(8,\)"):
        kbit.unpack(np.zeros(4, np.uint8), 4, 8, out=np.zeros(8, np.int8))


@pytest.mark.parametrize("bits", range(1, 9))
def test_plain_python_bit_math_matches_unpack(rng, bits):
    codes = rng.integers(0, 2**bits, 24, dtype=np.uint8)
    packed = kbit.pack(codes, bits)
    assert [int(code_at(packed, i, bits)) for i in range(24)] == codes.tolist()
    for g in range(3):
        word = read_group(packed, g * bits, bits)
        assert [int(group_code(word, s, bits)) for s in range(8)] == codes[
            8 * g:8 * g + 8].tolist()
