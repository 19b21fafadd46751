"""Inside the student's kernel: what a test cell's calls of the student's functions gave.

Before each test cell the grader calls `start(globals(), names)`: every name of the student's
that the cell uses is wrapped in a `Recorded` proxy. The test cell then runs as it always did,
and each call it makes of a student's function is written down: a fingerprint of the arguments,
the result (or the exception), what the call changed in its arguments (an `out` array, a dict
of parameters, a counter on a test's object) and the calls it made of functions it was given
(callbacks). `finish()` puts the names back and sends the record to the grader as one display
message. The grader's checker then runs the same test cell again in its own process, where
the student's functions are replayed from this record (`replay.py`): the assertions, the
references and the printed messages are the checker's, not the kernel's.

Everything here runs in the student's process and so is the student's to change: a forged
record can only claim results, and the checker compares those with references it computes
itself. Calls made while a recorded call runs (a function calling another, the calls inside a
`speed_ratio` measurement) are part of that call and are not recorded again.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from . import notebook_tools, shelf
from .replay import is_test_function
from .wire import decode, encode, fingerprint, is_device_array

MIME = "application/vnd.minilm.calls+json"
TRACKED_DEPTH = 3  # how deep into the arguments changes are looked for
TRACKED_MAX = 10_000  # objects looked at per call


class Recording:
    """The calls of one test cell, in order."""

    def __init__(self, namespace: dict, names: list[str]):
        self.namespace, self.events, self.depth = namespace, [], 0
        self.buffers: list = []  # large arrays of the record, sent as binary frames (wire.py)
        self.in_student_code = False  # inside a recorded call (not a fact, not the test's code)
        self.originals = {name: namespace[name] for name in names if name in namespace}
        self.missing = sorted(set(names) - set(self.originals))
        for name, target in self.originals.items():
            namespace[name] = Recorded(name, target, self)

    def fact(self, name: str, compute):
        """A fact the test cell asks of the kernel (notebook_tools): its value is recorded."""
        if self.depth:
            return compute()
        self.depth += 1
        try:
            value = compute()
        except Exception as error:
            self.events.append({"fact": name, "raised": describe(error)})
            raise
        finally:
            self.depth -= 1
        self.events.append({"fact": name, "value": encode(value, buffers=self.buffers)})
        return value

    def finish(self) -> dict:
        for name, target in self.originals.items():
            if isinstance(self.namespace.get(name), Recorded):
                self.namespace[name] = target
        return {"events": self.events, "missing": self.missing}


def describe(error: BaseException) -> dict:
    kind = type(error)
    return {"type": kind.__name__, "module": kind.__module__, "message": str(error)[:4000]}


class Recorded:
    """A student's function, recorded at each call the test cell makes."""

    def __init__(self, name: str, target, recording: Recording, key=None):
        self.recorded_name, self.recorded_target = name, target
        self._recording, self._key = recording, key

    def __getitem__(self, key):  # a CUDA launch configuration: kernel[blocks, threads](...)
        return Recorded(self.recorded_name, self.recorded_target[key], self._recording, encode(key))

    def __getattr__(self, attr):
        return getattr(self.recorded_target, attr)

    def __call__(self, *args, **kwargs):
        recording = self._recording
        if recording.depth:
            return self.recorded_target(*args, **kwargs)
        event = {"call": self.recorded_name, "key": self._key,
                 "arguments": fingerprint((args, kwargs)), "callbacks": []}
        tracked = _track((list(args), kwargs))
        refs = {id(obj): path for path, obj, _ in tracked}
        args = [_callback(a, ["a", i], event, refs, recording.buffers)
                for i, a in enumerate(args)]
        kwargs = {k: _callback(a, ["k", k], event, refs, recording.buffers)
                  for k, a in kwargs.items()}
        recording.events.append(event)
        recording.depth += 1
        recording.in_student_code = True
        try:
            result = self.recorded_target(*args, **kwargs)
        except Exception as error:
            event["raised"] = describe(error)
            raise
        finally:
            recording.depth -= 1
            recording.in_student_code = False
            event["changes"] = _changes(tracked, refs, recording.buffers)
        event["result"] = encode(result, refs, buffers=recording.buffers)
        return result


def _callback(arg, path, event, refs, buffers):
    """A function the test passed in (not the student's): its calls are recorded too (an
    argument of the call passed on to it travels as a reference)."""
    if isinstance(arg, Recorded) or not is_test_function(arg):
        return arg

    class Callback:
        def __call__(self, *args, **kwargs):
            event["callbacks"].append({"path": path,
                                       "args": encode((args, kwargs), refs, buffers=buffers)})
            return arg(*args, **kwargs)

        def __getattr__(self, attr):
            return getattr(arg, attr)

    return Callback()


def _track(arguments) -> list:
    """(path, object, state before the call) of the arrays, containers and test-defined
    objects among the arguments: what a call may change in place."""
    found, seen = [], set()

    def visit(obj, path, depth):
        if id(obj) in seen or len(found) >= TRACKED_MAX or depth > TRACKED_DEPTH:
            return
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            found.append((path, obj, obj.copy()))
        elif is_device_array(obj):
            found.append((path, obj, obj.copy_to_host()))
        elif isinstance(obj, list | tuple):
            if isinstance(obj, list):
                found.append((path, obj, [id(item) for item in obj]))
            for i, item in enumerate(obj):
                visit(item, [*path, i], depth + 1)
        elif isinstance(obj, dict):
            found.append((path, obj, [(k, id(v)) for k, v in obj.items()]))
            for key, item in obj.items():
                if isinstance(key, str | int):
                    visit(item, [*path, key], depth + 1)
        elif type(obj).__module__ == "__main__" and isinstance(getattr(obj, "__dict__", None),
                                                               dict):
            found.append((path, obj, {k: id(v) for k, v in vars(obj).items()}))

    for i, arg in enumerate(arguments[0]):
        visit(arg, ["a", i], 0)
    for key, arg in arguments[1].items():
        visit(arg, ["k", key], 0)
    return found


def _changes(tracked, refs, buffers) -> list:
    changes = []
    for path, obj, before in tracked:
        if isinstance(obj, np.ndarray) or is_device_array(obj):
            after = obj if isinstance(obj, np.ndarray) else obj.copy_to_host()
            if not np.array_equal(after, before, equal_nan=after.dtype.kind in "fc"):
                changes.append({"path": path, "array": encode(np.asarray(after), buffers=buffers)})
        elif isinstance(obj, list):
            if [id(item) for item in obj] != before:
                changes.append({"path": path, "items": encode(list(obj), refs, buffers=buffers)})
        elif isinstance(obj, dict):
            if [(k, id(v)) for k, v in obj.items()] != before:
                changes.append({"path": path, "items": encode(dict(obj), refs, buffers=buffers)})
        else:
            now = vars(obj)
            changed = {k: v for k, v in now.items() if before.get(k) != id(v)}
            if changed:
                changes.append({"path": path, "attributes": encode(changed, refs, buffers=buffers)})
    return changes


_recording: Recording | None = None


def start(namespace: dict, names: list[str], generators: str = "{}",
          off_limits: tuple[str, ...] = ()) -> None:
    """Record the calls of `names` (the student's) until `finish`; first set the instructor's
    random generators to the checker's states (`generators`, JSON: {name: state}), and make
    the library functions `off_limits` (dotted names) raise `OffLimits` in the student's code."""
    global _recording
    shelf.clear(off_limits, namespace, lambda: bool(_recording and _recording.in_student_code))
    for name, state in json.loads(generators).items():
        state = decode(state)
        if not isinstance(namespace.get(name), np.random.Generator):
            kind = getattr(np.random, str(state.get("bit_generator")), np.random.PCG64)
            namespace[name] = np.random.Generator(kind())
        namespace[name].bit_generator.state = state
    _recording = Recording(namespace, names)
    notebook_tools.set_fact_hook(_recording.fact)


def stop() -> tuple[dict, list]:
    """Stop recording: (the record, its large arrays as buffers), with the student's names and
    the library as they were."""
    global _recording
    recording, _recording = _recording, None
    notebook_tools.set_fact_hook(None)
    shelf.restore()
    if recording is None:
        return {"events": [], "missing": [], "lost": True}, []
    return recording.finish(), recording.buffers


def finish() -> None:
    """Stop recording and send the record to the grader: one display message of type MIME, its
    large arrays as the message's binary frames (read by scoring.fetch_record)."""
    from IPython import get_ipython

    record, buffers = stop()
    publisher = getattr(get_ipython(), "display_pub", None)
    if getattr(publisher, "session", None) is None:
        raise RuntimeError("the record goes to the grader from a Jupyter kernel; this is none")
    sys.stdout.flush()
    sys.stderr.flush()
    content = {"data": {MIME: record}, "metadata": {}, "transient": {}}
    message = publisher.session.msg("display_data", content, parent=publisher.parent_header)
    publisher.session.send(publisher.pub_socket, message, ident=publisher.topic, buffers=buffers)
