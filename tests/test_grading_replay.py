"""Scores decided outside the student's process: the wire, the kernel's record and its replay
in the checker (wire.py, recorder.py, replay.py, checker.py), in one process.

`kernel_then_checker` runs a "student" cell and a test cell as the kernel would (the student's
names recorded), sends the record through JSON (its large arrays as buffers beside it), and runs
the test cell again as the checker does: the checker's error (or None) is what the test cell
scores."""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minilm.grading import notebook_tools, recorder, shelf
from minilm.grading.checker import Checker, run_cell
from minilm.grading.replay import NotRecorded, Replayer
from minilm.grading.scoring import student_names
from minilm.grading.wire import Opaque, WireError, decode, encode, fingerprint

SETUP = "import numpy as np\nfrom minilm import kbit\nrng = np.random.default_rng(0)\n"


def kernel_then_checker(student: str, test: str, tamper=None):
    """(the checker's reply, the record) for a test cell after a student's cell."""
    kernel = {"__name__": "__main__"}
    exec(SETUP, kernel)
    exec(student, kernel)
    names = student_names(test, {"np", "rng", "kbit"})
    recorder.start(kernel, names, "{}", shelf.declared(test))
    try:
        exec(test, kernel)
    except Exception:  # the kernel's own verdict does not count
        pass
    finally:
        record, buffers = recorder.stop()
        record = json.loads(json.dumps(record))
    if tamper:
        tamper(record)
    checker = {"__name__": "__main__", "__builtins__": __builtins__}
    run_cell(checker, {"source": SETUP})
    return run_cell(checker, {"source": test, "names": names, "record": record}, buffers), record


# -- the wire ----------------------------------------------------------------------------------

def _same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and \
            np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(map(_same, a.values(),
                                                                      b.values()))
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    return type(a) is type(b) and a == b


arrays = hnp.arrays(st.sampled_from([np.uint8, np.int32, np.int64, np.float32, np.float64,
                                     np.bool_, np.complex64]),
                    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) |
    st.binary(max_size=8) | arrays,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) |
    st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(values)
def test_a_value_crosses_the_wire_unchanged(value):
    back = decode(json.loads(json.dumps(encode(value))))
    assert _same(value, back)
    assert fingerprint(value) == fingerprint(back)


@settings(max_examples=100, deadline=None)
@given(values, st.integers(0, 64))
def test_large_arrays_cross_as_buffers_unchanged(value, threshold):
    buffers = []
    with pytest.MonkeyPatch.context() as patch:  # small arrays too, so hypothesis reaches them
        patch.setattr("minilm.grading.wire.BUFFERED_BYTES", threshold)
        data = json.loads(json.dumps(encode(value, buffers=buffers)))
    back = decode(data, buffers=[bytes(buffer) for buffer in buffers])
    assert _same(value, back)
    for array in _arrays_in(back):
        assert array.flags.writeable


def _arrays_in(value):
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _arrays_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _arrays_in(item)


def test_a_large_array_travels_beside_the_json():
    big = np.arange(100_000, dtype=np.float32).reshape(400, 250)[:, ::2]  # not contiguous
    buffers = []
    data = encode({"out": big, "small": np.ones(3)}, buffers=buffers)
    assert len(buffers) == 1 and len(json.dumps(data)) < 500
    assert _same(decode(data, buffers=buffers), {"out": big, "small": np.ones(3)})


@pytest.mark.parametrize("body", [
    {"buffer": 1, "dtype": "<f4", "shape": [2]}, {"buffer": True, "dtype": "<f4", "shape": [2]},
    {"buffer": 0, "dtype": "<f4", "shape": [3]}, {"buffer": 0, "dtype": "|O", "shape": [1]},
    {"buffer": 0, "dtype": "nonsense", "shape": [2]},
    {"buffer": 0, "dtype": "<f4", "shape": [-2, -1]},
    {"buffer": 0, "dtype": "<f4", "shape": "2"}, {"buffer": 0, "dtype": "|V0", "shape": [2]},
    {"buffer": 0, "dtype": "<f4", "shape": [1] * 40}])
def test_a_buffer_that_does_not_fit_its_array_is_refused(body):
    with pytest.raises(WireError):
        decode({"$array": body}, buffers=[np.zeros(2, np.float32).tobytes()])
    with pytest.raises(WireError):  # and no buffers at all
        decode({"$array": body})


def test_numpy_scalars_and_records_keep_their_type():
    speed = notebook_tools.Speed(0.5, 1e-3, 2e-3, 1)
    back = decode(json.loads(json.dumps(encode([np.float32(1.5), np.int64(3), speed]))))
    assert type(back[0]) is np.float32 and type(back[1]) is np.int64 and back[2] == speed


def test_an_object_the_wire_does_not_carry_equals_nothing():
    class Rigged:
        def __eq__(self, other):
            return True

    back = decode(encode(Rigged()))
    assert isinstance(back, Opaque) and back != back and not back and "Rigged" in repr(back)


@pytest.mark.parametrize("data", [
    {"$array": "not base64!"}, {"$nothing": 1}, {"$dict": [[1]]}, {"$scalar": encode(
        np.zeros(2))["$array"]}, {"$ref": ["a", 0]}, {"$bigint": "12x"}, {"$float": "1e999"},
    {"$complex": ["a", 1]}, {"$tuple": 3, "x": 1, "y": 2}])
def test_what_the_wire_never_writes_is_refused(data):
    with pytest.raises(WireError):
        decode(data)


def test_pickled_arrays_are_refused():
    buffer = io.BytesIO()
    np.save(buffer, np.array([object()], dtype=object), allow_pickle=True)
    import base64

    with pytest.raises(WireError, match="not an .npy"):
        decode({"$array": base64.b64encode(buffer.getvalue()).decode()})
    assert isinstance(decode(encode(np.array([1, "a"], dtype=object))), Opaque)


# -- record and replay -------------------------------------------------------------------------

HONEST = """
def pack(x, bits):
    if bits > 8:
        raise ValueError(f"bits must be at most 8, got {bits}")
    return (x * 2).astype(np.uint8)

def fill(src, out):
    out[:] = src + 1

def update(params, grads):
    for name in params:
        params[name] -= grads[name]
    params["new"] = np.zeros(1)

def pick(rows):
    return [row for row in rows if row["keep"]]

def call_twice(fn, *args):
    fn(*args)
    return fn(*args)

def count(counter, n):
    counter.seen = n
"""

TEST = """
x = rng.integers(0, 8, size=17).astype(np.uint8)
assert pack(x, 3).tolist() == (x * 2).tolist(), "pack"
try:
    pack(x, 9)
except ValueError as error:
    assert "at most 8" in str(error)
else:
    raise AssertionError("bits=9 must raise ValueError")
out = np.zeros(5)
assert fill(np.arange(5.0), out) is None
np.testing.assert_array_equal(out, np.arange(5.0) + 1)
params = {"w": np.ones(3), "b": np.ones(2)}
w = params["w"]
update(params, {"w": np.full(3, 0.5), "b": np.ones(2)})
assert params["w"] is w and w.tolist() == [0.5] * 3 and "new" in params
rows = [{"keep": True}, {"keep": False}, {"keep": True}]
got = pick(rows)
assert len(got) == 2 and got[0] is rows[0] and got[1] is rows[2]
calls = []
assert call_twice(lambda a: calls.append(a) or len(calls), "a") == 2 and calls == ["a", "a"]
class Counter:
    pass

counter = Counter()
count(counter, 7)
assert counter.seen == 7
print("all good")
"""


def test_an_honest_solution_passes_in_the_checker():
    reply, record = kernel_then_checker(HONEST, TEST)
    assert reply == {"stdout": "all good\n", "error": None}, reply
    assert [e.get("call") for e in record["events"]] == [
        "pack", "pack", "fill", "update", "pick", "call_twice", "count"]


WRONG = "def pack(x, bits):\n    return np.zeros_like(x)\n"
SIMPLE = ("x = rng.integers(0, 8, size=9).astype(np.uint8)\n"
          "np.testing.assert_array_equal(pack(x, 3), x * 2, err_msg='pack')\n")


@pytest.mark.parametrize("attack", [  # patched modules: test_grading_redteam.py (two processes)
    # a result whose comparisons are all True
    "class Rigged(np.ndarray):\n    def __eq__(self, other):\n"
    "        return np.ones(np.shape(other), bool)\n"
    "def pack(x, bits):\n    return np.zeros_like(x).view(Rigged)\n",
    # the test's data changed in the kernel so that the wrong answer is right there
    "rng = type('R', (), {'integers': lambda *a, **k: np.zeros(9, np.int64)})()\n",
])
def test_a_wrong_answer_fails_whatever_the_kernel_did(attack):
    reply, _ = kernel_then_checker(WRONG + attack, SIMPLE)
    assert reply["error"] is not None, reply


def _forge_result(record):
    record["events"][0]["result"] = encode(np.zeros(9, np.uint8))


def _forge_arguments(record):
    record["events"][0]["arguments"] = fingerprint(((np.zeros(9, np.uint8), 3), {}))


@pytest.mark.parametrize("tamper, error", [
    (_forge_result, "AssertionError"),  # a claimed result is checked like any other
    (lambda r: r["events"].clear(), "NotRecorded"),
    (lambda r: r.clear(), "NotRecorded"),
    (lambda r: r["events"][0].update(call="other"), "NotRecorded"),
    (lambda r: r["events"][0].update(result={"$ref": ["a", 0]}), "AssertionError"),
    (lambda r: r["events"][0].update(result={"$eval": "1"}), "NotRecorded"),
    (lambda r: r["events"][0].update(raised={"type": "SystemExit", "module": "builtins",
                                             "message": "0"}), "StudentError"),
])
def test_a_forged_record_gains_nothing(tamper, error):
    honest = "def pack(x, bits):\n    return x * 2\n"
    reply, _ = kernel_then_checker(honest, SIMPLE, tamper)
    assert reply["error"] and reply["error"]["ename"] == error, reply


def test_other_arguments_in_the_kernel_are_named_when_the_test_fails():
    def other_data(record):
        record["events"][0]["arguments"] = "0" * 32
        record["events"][0]["result"] = encode(np.ones(9, np.int64))

    reply, _ = kernel_then_checker("def pack(x, bits):\n    return x * 2\n", SIMPLE, other_data)
    assert "AssertionError" == reply["error"]["ename"]
    assert "other arguments" in reply["error"]["evalue"]
    reply, _ = kernel_then_checker("def pack(x, bits):\n    return x * 2\n", SIMPLE,
                                   lambda r: r["events"][0].update(arguments="0" * 32))
    assert reply["error"] is None  # e.g. an `out` array made with np.empty: only a hint


def test_a_forged_callback_can_only_call_the_tests_functions():
    test = ("import os\nfound = []\n"
            "assert call_twice(lambda: found.append(1)) is None and found == [1, 1]\n")
    student = "def call_twice(fn):\n    fn()\n    fn()\n"
    reply, _ = kernel_then_checker(student, test)
    assert reply["error"] is None, reply

    def aim_at_a_library_function(record):
        record["events"][0]["callbacks"][0]["path"] = ["a", 0, 0]

    reply, _ = kernel_then_checker(student, test, aim_at_a_library_function)
    assert reply["error"]["ename"] == "NotRecorded"


def test_a_missing_function_is_a_name_error():
    reply, record = kernel_then_checker("", SIMPLE)
    assert record["missing"] == ["pack"] and reply["error"]["ename"] == "NameError"


def test_facts_come_from_the_kernel_and_are_replayed():
    student = "def pack(x, bits):\n    return x * 2\n"
    test = ("from minilm.grading.notebook_tools import fact\n"
            "assert fact('answer', lambda: 42) == 42\n")
    reply, record = kernel_then_checker(student, test)
    assert reply["error"] is None and record["events"] == [{"fact": "answer", "value": 42}]
    replayer = Replayer({"events": [{"fact": "answer", "value": 41}]})
    with pytest.raises(NotRecorded):
        replayer.fact("other", lambda: 0)


@pytest.fixture
def warm_zygote():
    """A zygote for this test (as a grading worker has), stopped after it."""
    from minilm.grading import zygote

    zygote.start()
    yield zygote._zygote[0]
    process, control = zygote._zygote or (None, None)
    zygote._zygote = None
    if control is not None:
        control.close()  # the zygote ends when its worker's end closes
        process.wait(10)


@pytest.fixture(params=["fresh", "forked"])
def checker_start(request):
    """How checkers start: a fresh Python each, or forked by a zygote (a grading worker)."""
    if request.param == "forked":
        request.getfixturevalue("warm_zygote")
    return request.param


def test_the_checker_process_answers_and_survives_a_hang(checker_start):
    checker = Checker(timeout=20)
    try:
        checker.start()
        assert type(checker._process).__name__ == ("Forked" if checker_start == "forked"
                                                   else "Popen")
        assert checker.run(SETUP, "setup")["error"] is None
        reply = checker.run("print(rng.integers(0, 100))", "test", [], {"events": []})
        assert reply["stdout"].strip().isdigit() and reply["error"] is None
        checker.timeout = 2
        from minilm.grading.checker import CheckerFailed

        with pytest.raises(CheckerFailed, match="ran past"):
            checker.run("import time\ntime.sleep(30)", "hang", [], {"events": []})
        checker.timeout = 20  # a new checker, with the cells before the hang run again
        assert checker.run("print(type(rng).__name__)", "after", [], {"events": []}) == \
            {"stdout": "Generator\n", "error": None}
    finally:
        checker.close()


def test_setup_cells_run_while_the_grader_goes_on(checker_start):
    checker = Checker(timeout=20)
    try:
        assert checker.run(SETUP, "setup", wait=False) is None
        assert checker.run("1 / 0", "broken_setup", wait=False) is None
        assert checker.run("x = rng.integers(0, 100)", "more_setup", wait=False) is None
        assert list(checker.generators()) == ["rng"]  # read after the setup cells' replies
        assert [(name, error["ename"]) for name, error in checker.setup_errors] == \
            [("broken_setup", "ZeroDivisionError")]
        assert checker.run("print(0 <= x < 100)", "test", [], {"events": []}) == \
            {"stdout": "True\n", "error": None}
    finally:
        checker.close()


def test_a_forked_checker_that_dies_is_forked_again(warm_zygote):
    import os
    import signal

    from minilm.grading import zygote
    from minilm.grading.checker import CheckerFailed

    checker = Checker(timeout=20)
    try:
        checker.run(SETUP + "import numba\n", "setup")
        os.kill(checker._process.pid, signal.SIGKILL)
        with pytest.raises(CheckerFailed, match="stopped"):
            checker.run("print(1)", "test", [], {"events": []})
        reply = checker.run("print(type(rng).__name__)", "after", [], {"events": []})
        assert reply == {"stdout": "Generator\n", "error": None}
        assert type(checker._process).__name__ == "Forked"
        warm_zygote.kill()  # no zygote any more: a fresh Python takes over
        warm_zygote.wait(10)
        os.kill(checker._process.pid, signal.SIGKILL)
        with pytest.raises(CheckerFailed):
            checker.run("print(1)", "test", [], {"events": []})
        assert checker.run("print(rng is not None)", "after", [], {"events": []})["stdout"] \
            == "True\n"
        assert type(checker._process).__name__ == "Popen" and zygote._zygote is None
    finally:
        checker.close()


def test_the_kernels_generators_follow_the_checkers():
    from minilm.grading.checker import generators

    checker = {"rng": np.random.default_rng(0), "other": 3}
    checker["rng"].standard_normal(5)  # the tests so far drew 5 numbers
    states = json.dumps(json.loads(json.dumps(generators(checker))))
    for kernel in ({"rng": np.random.default_rng(0)},  # a restarted kernel: a fresh generator
                   {"rng": "the student's own rng"}):
        recorder.start(kernel, [], states)
        recorder.stop()
        expected = copy.deepcopy(checker["rng"]).standard_normal(3)
        assert kernel["rng"].standard_normal(3).tolist() == expected.tolist()


def test_a_failed_check_quotes_its_lines_as_ipython_does():
    from minilm.grading.scoring import checker_outputs

    source = "x = 1\n### BEGIN HIDDEN TESTS\nassert x == 2, 'x'\n### END HIDDEN TESTS"
    reply = run_cell({"__name__": "__main__"}, {"source": source, "name": "ex1_tests"})
    assert reply["error"]["lines"] == [3]
    outputs = checker_outputs({**reply, "stdout": "hi\n"}, source, 7)
    assert [o.output_type for o in outputs] == ["stream", "error"]
    assert outputs[1].traceback[0] == "Cell In[7], line 3\n----> 3 assert x == 2, 'x'"


# -- the answer is not on the shelf (shelf.py) ---------------------------------------------------

OFF = "# Off limits when graded (this exercise asks you to write them): minilm.kbit.pack\n"
PACK4 = (OFF + "codes = rng.integers(0, 16, size=33, dtype=np.uint8)\n"
         "np.testing.assert_array_equal(pack4(codes), kbit.pack(codes, 4))\n")


def test_the_off_limits_are_read_from_the_opening_comment_only():
    assert shelf.declared(OFF + "x = 1") == ("minilm.kbit.pack",)
    assert shelf.declared("# off limits when graded:\n#   a.b,\n#   c.d\nx = 1") == ("a.b", "c.d")
    assert shelf.declared("x = 1\n" + OFF) == ()
    assert shelf.resolve("minilm.kbit.matmul:matmul_reference").__name__ == "matmul_reference"
    assert shelf.resolve("minilm.kbit.MATMUL_VERSIONS[v2]").__name__ == "matmul_v2"
    assert shelf.resolve("minilm.optim.AdamW.step").__qualname__ == "AdamW.step"
    assert shelf.resolve("minilm.kbit.pack").__name__ == "pack"
    assert shelf.resolve("minilm.kbit.nothing") is None and shelf.resolve("nothing.x") is None


@pytest.mark.parametrize("student", [
    "def pack4(codes):\n    return kbit.pack(codes, 4)\n",
    "from minilm.kbit import pack as my_pack\ndef pack4(codes):\n    return my_pack(codes, 4)\n",
    "def pack4(codes, _pack=kbit.pack):\n    return _pack(codes, 4)\n",
    "import sys\ndef pack4(codes):\n    return sys.modules['minilm.kbit.pack'].pack(codes, 4)\n",
])
def test_the_librarys_answer_fails_the_exercise(student):
    reply, _ = kernel_then_checker(student, PACK4)
    assert reply["error"]["ename"] == "OffLimits", reply
    assert "this exercise asks you to write it" in reply["error"]["evalue"]
    assert "minilm.kbit.pack" in reply["error"]["evalue"]
    codes = np.arange(8, dtype=np.uint8)  # and the library is whole again afterwards
    assert kbit_pack(codes, 4).tolist() == [16, 50, 84, 118]


def kbit_pack(codes, bits):
    from minilm import kbit

    return kbit.pack(codes, bits)


def test_an_own_solution_and_the_tests_references_still_work():
    student = ("def pack4(codes):\n    padded = np.zeros(codes.size + codes.size % 2, np.uint8)\n"
               "    padded[:codes.size] = codes\n    return padded[0::2] | (padded[1::2] << 4)\n")
    reply, _ = kernel_then_checker(student, PACK4)
    assert reply["error"] is None, reply


def test_a_numba_function_off_limits_is_replaced_under_every_name():
    from minilm.kernels import softmax

    compiled = softmax.softmax_rows
    namespace = {"alias": compiled}
    inside = [False]
    shelf.clear(["minilm.kernels.softmax.softmax_rows", "no.such.thing"], namespace,
                lambda: inside[0])
    try:
        x, out = np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32)
        namespace["alias"](x, out)  # the test's own call
        assert np.allclose(out, 1 / 3)
        inside[0] = True
        for fn in (namespace["alias"], softmax.softmax_rows):
            with pytest.raises(shelf.OffLimits, match="softmax_rows"):
                fn(x, out)
    finally:
        shelf.restore()
    assert softmax.softmax_rows is compiled and namespace["alias"] is compiled


def test_a_record_over_the_cap_counts_as_none(monkeypatch):
    from minilm.grading import checker as checker_module

    monkeypatch.setattr(checker_module, "RECORD_MAX_CHARS", 1000)
    checker = Checker(timeout=20)
    try:
        big = {"events": [{"call": "f", "result": "x" * 2000}]}
        reply = checker.run("f(1)", "test", ["f"], big)
        assert reply["error"]["ename"] == "NotRecorded"
        assert "over 1,000 bytes" in reply["error"]["evalue"]
        buffers = [np.zeros(1000, np.uint8)]  # the buffers count too
        reply = checker.run("f(1)", "test", ["f"], {"events": []}, buffers)
        assert "over 1,000 bytes" in reply["error"]["evalue"]
    finally:
        checker.close()
