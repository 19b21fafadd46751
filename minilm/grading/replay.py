"""In the grader's checker: the student's functions replayed from the kernel's record.

The checker (checker.py) runs each test cell again, in a process of the grader's where no
student code runs. There the names of the student's functions are `Replayed` proxies: a call
takes the next event of the record the kernel sent (recorder.py), checks that it is this call
with these arguments (the fingerprints must match: a result counts only for the grader's own
inputs), calls the test's callbacks as the student's function did (their sleeps skipped), makes
the same changes to the arguments (an `out` array filled, a dict of parameters updated in
place), and returns the recorded result, or raises the recorded exception. The assertions that
follow are the checker's: a patched `numpy.testing`, a rigged comparison or an IPython hook in
the kernel has nothing to act on here."""

from __future__ import annotations

import builtins
import contextlib
import time
import types

import numpy as np

from .wire import WireError, decode, encode, fingerprint, is_device_array


class NotRecorded(Exception):
    """The kernel's record does not have the call the test cell makes (or cannot be read)."""


class StudentError(Exception):
    """An exception of the student's code that is not one of Python's own types."""


def rebuild(raised) -> Exception:
    """The exception the student's function raised, as an exception of the checker."""
    if not isinstance(raised, dict):
        return NotRecorded("a raised exception that cannot be read")
    name, message = str(raised.get("type"))[:100], str(raised.get("message"))[:4000]
    from .shelf import OffLimits

    known = {"builtins": vars(builtins), "minilm.grading.shelf": {"OffLimits": OffLimits}}
    kind = known.get(raised.get("module"), {}).get(name)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(message)
        except Exception:  # an exception type that wants other arguments
            pass
    return StudentError(f"{name}: {message}")


class Replayer:
    """The events of one test cell's record, taken in order."""

    def __init__(self, record, buffers=()):
        self.buffers = list(buffers)  # the record's large arrays (wire.py)
        events = record.get("events") if isinstance(record, dict) else None
        self.events = events if isinstance(events, list) else []
        self.position = 0
        self.notes: list[str] = []  # said with the test's error, if it fails
        self.why = ""
        if not isinstance(events, list) or record.get("lost"):
            self.why = " (the kernel sent no record of this cell"
            self.why += f": {record['kernel_error']})" if isinstance(record, dict) and \
                record.get("kernel_error") else ")"
        elif isinstance(record.get("kernel_error"), str):
            self.why = f" (the test stopped there in your kernel: {record['kernel_error'][:300]})"

    def _next(self, what: str) -> dict:
        if self.position >= len(self.events):
            raise NotRecorded(f"{what}: the kernel recorded no such call{self.why}")
        event = self.events[self.position]
        self.position += 1
        if not isinstance(event, dict):
            raise NotRecorded(f"{what}: an event of the record cannot be read")
        return event

    def fact(self, name: str, compute):
        event = self._next(f"{name}(...)")
        if event.get("fact") != name:
            raise NotRecorded(f"{name}(...): the kernel recorded {_what(event)} here instead")
        if "raised" in event:
            raise rebuild(event["raised"])
        return self._decode(name, event.get("value"))

    def call(self, name: str, key, args: tuple, kwargs: dict):
        what = f"{name}{'' if key is None else '[...]'}(...)"
        event = self._next(what)
        if event.get("call") != name or event.get("key") != key:
            raise NotRecorded(f"{what}: the kernel recorded {_what(event)} here instead")
        if event.get("arguments") != fingerprint((args, kwargs)) and not self.notes:
            self.notes.append(  # uninitialised memory differs too (np.empty): only a hint
                f"in your kernel {what} had other arguments than in the grader's run (did your "
                "code change the test's data or use the notebook's `rng`?)")
        arguments = (list(args), kwargs)
        for callback in _list(event.get("callbacks")):
            path = callback.get("path") if isinstance(callback, dict) else None
            target = _resolve(arguments, path)
            given = self._decode(what, callback.get("args"), lambda p: _resolve(arguments, p))
            if len(path) != 2 or not is_test_function(target) or not (
                    isinstance(given, tuple) and len(given) == 2 and
                    isinstance(given[0], tuple) and isinstance(given[1], dict)):
                raise NotRecorded(f"{what}: a recorded callback that the test did not pass")
            with _no_sleep():  # its effects count here; its times were the kernel's
                target(*given[0], **{str(k): v for k, v in given[1].items()})  # as yours did
        self._apply(what, arguments, _list(event.get("changes")))
        if "raised" in event:
            raise rebuild(event["raised"])
        if "result" not in event:
            raise NotRecorded(f"{what}: did not return in your kernel{self.why or ''}")
        return self._decode(what, event["result"], lambda path: _resolve(arguments, path))

    def _decode(self, what, data, resolve=None):
        try:
            return decode(data, resolve, buffers=self.buffers)
        except (WireError, RecursionError, TypeError, ValueError) as error:
            raise NotRecorded(f"{what}: the recorded value cannot be read ({error})") from None

    def _apply(self, what, arguments, changes) -> None:
        """The changes the call made to its arguments, made to the checker's arguments."""
        planned = []
        for change in changes:  # find every target before changing any
            if not isinstance(change, dict):
                raise NotRecorded(f"{what}: a recorded change cannot be read")
            planned.append((_resolve(arguments, change.get("path")), change))
        resolve = lambda path: _resolve(arguments, path)  # noqa: E731
        for target, change in sorted(planned, key=lambda item: "array" not in item[1]):
            if "array" in change:
                value = self._decode(what, change["array"])
                host = target.copy_to_host() if is_device_array(target) else target
                if not isinstance(host, np.ndarray) or not isinstance(value, np.ndarray) or \
                        value.shape != host.shape or value.dtype != host.dtype:
                    raise NotRecorded(f"{what}: a recorded change does not fit its argument")
                if is_device_array(target):
                    target[...] = value  # writes through a view into its buffer
                else:
                    np.copyto(target, value)
            elif "items" in change and isinstance(target, list | dict):
                items = self._decode(what, change["items"], resolve)
                if type(items) is not type(target):
                    raise NotRecorded(f"{what}: a recorded change does not fit its argument")
                if isinstance(target, list):
                    target[:] = items
                else:
                    target.clear()
                    target.update(items)
            elif "attributes" in change and type(target).__module__ == "__main__":
                attributes = self._decode(what, change["attributes"], resolve)
                if not isinstance(attributes, dict):
                    raise NotRecorded(f"{what}: a recorded change does not fit its argument")
                for name, value in attributes.items():
                    setattr(target, str(name), value)
            else:
                raise NotRecorded(f"{what}: a recorded change does not fit its argument")


@contextlib.contextmanager
def _no_sleep():
    """`time.sleep` returns at once: a test's callback replayed in the checker has its effects
    (a list appended to), but what the student's function measured of it is in the record."""
    sleep, time.sleep = time.sleep, lambda seconds: None
    try:
        yield
    finally:
        time.sleep = sleep


def is_test_function(obj) -> bool:
    """A function the test cell defined (or compiled with Numba): what may be a callback."""
    if isinstance(obj, types.FunctionType | types.MethodType):
        return getattr(obj, "__module__", None) == "__main__"
    return getattr(getattr(obj, "py_func", None), "__module__", None) == "__main__"


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _what(event: dict) -> str:
    name = event.get("call") or event.get("fact")
    return f"a call of {str(name)[:60]}" if name else "something else"


def _resolve(arguments, path):
    """The object at `path` (["a", 0, "w"], ["k", "out"]) among a call's arguments."""
    if not isinstance(path, list) or len(path) < 2 or path[0] not in ("a", "k"):
        raise NotRecorded("a recorded path that names no argument")
    try:
        obj = arguments[0][path[1]] if path[0] == "a" else arguments[1][path[1]]
        for step in path[2:]:
            if not isinstance(obj, list | tuple | dict) or isinstance(step, bool):
                raise TypeError
            obj = obj[step]
    except (IndexError, KeyError, TypeError):
        raise NotRecorded(f"a recorded path that names no argument: {str(path)[:80]}") from None
    return obj


class Replayed:
    """A student's function in the checker: each call is answered from the kernel's record."""

    def __init__(self, name: str, replayer: Replayer, key=None):
        self.replayed_name, self._replayer, self._key = name, replayer, key

    def __getitem__(self, key):  # a CUDA launch configuration: kernel[blocks, threads](...)
        return Replayed(self.replayed_name, self._replayer, encode(key))

    def __call__(self, *args, **kwargs):
        return self._replayer.call(self.replayed_name, self._key, args, kwargs)

    def __repr__(self):
        return f"<{self.replayed_name}: your function, as your kernel ran it>"
