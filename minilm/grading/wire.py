"""Values between the student's kernel and the grader's checker, as plain data (README:
"Grading you can trust").

What the student's functions returned travels from the sandbox to the checker as JSON: NumPy
arrays as `.npy` bytes (read back with `allow_pickle=False`), containers and numbers as
themselves, a few library types by their fields. Nothing is ever unpickled or executed: a value
the wire does not know (a student's own class, a function) arrives as an `Opaque` stand-in that
equals nothing, so a rigged object cannot pass a comparison. An object that was one of the
call's own arguments travels as a reference to it (`{"$ref": path}`), so identity checks (`row
is table[i]`, an array updated in place) still hold on the other side.

Large arrays (`BUFFERED_BYTES` and more) can travel beside the JSON as raw buffers
(`encode(..., buffers=[])` appends them; `{"$array": {"buffer": i, "dtype": ..., "shape": ...}}`
names one): the kernel sends them as binary frames of its Jupyter message and the grader hands
them to the checker as files, with no base64 or JSON on the way (chapter 1's speed test records
two 16 MiB results).

`fingerprint` condenses a call's arguments into a digest, compared on both sides to make sure a
recorded result belongs to the grader's own inputs.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import math

import numpy as np

MAX_DEPTH = 24  # nesting of containers in one value
BUFFERED_BYTES = 64 * 1024  # arrays this large travel as raw buffers where the caller takes them
MAX_DIMENSIONS = 32  # of an array that arrives as a raw buffer


class WireError(ValueError):
    """A value that cannot travel, or a message that is not what the wire writes."""


class Opaque:
    """What arrives in place of an object the wire does not carry: equal to nothing."""

    def __init__(self, what: str):
        self._what = str(what)[:200]

    def __eq__(self, other):
        return False

    __hash__ = None

    def __bool__(self):
        return False

    def __repr__(self):
        return f"<{self._what} (from the student's kernel: not a value the grader accepts)>"


def _npy(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _from_npy(text) -> np.ndarray:
    if not isinstance(text, str):
        raise WireError("an array must be base64 text")
    try:
        return np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise WireError(f"not an .npy array: {error}") from None


def _buffered(array: np.ndarray, buffers: list) -> dict:
    buffers.append(memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8)))
    return {"buffer": len(buffers) - 1, "dtype": array.dtype.str, "shape": list(array.shape)}


def _from_buffer(body: dict, buffers) -> np.ndarray:
    index, dtype, shape = body.get("buffer"), body.get("dtype"), body.get("shape")
    if buffers is None or not isinstance(index, int) or isinstance(index, bool) or \
            not 0 <= index < len(buffers):
        raise WireError("an array that names no buffer of the message")
    if not isinstance(dtype, str) or not isinstance(shape, list) or \
            len(shape) > MAX_DIMENSIONS or not all(isinstance(n, int) and not isinstance(n, bool)
                                                    and n >= 0 for n in shape):
        raise WireError("an array buffer needs a dtype string and a list of sizes")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise WireError(f"not a dtype: {dtype[:40]!r}") from None
    if dtype.hasobject or dtype.itemsize == 0:
        raise WireError("an array buffer of Python objects")
    buffer = memoryview(buffers[index]).cast("B")
    if math.prod(shape) * dtype.itemsize != buffer.nbytes:
        raise WireError(f"an array of shape {tuple(shape)} and dtype {dtype} does not fit its "
                        f"buffer of {buffer.nbytes} bytes")
    return np.frombuffer(buffer, dtype).reshape(shape).copy()  # writable, owns its memory


def is_device_array(obj) -> bool:
    """A numba.cuda device array (or the simulator's), recognised without importing numba."""
    return not isinstance(obj, np.ndarray) and all(
        hasattr(obj, name) for name in ("copy_to_host", "copy_to_device", "shape", "dtype"))


def _dataclass_types() -> dict:
    from .notebook_tools import Speed

    return {"Speed": Speed}


def encode(value, refs: dict | None = None, depth: int = 0, buffers: list | None = None):
    """`value` as JSON-ready data; objects whose id is in `refs` become `{"$ref": path}`;
    arrays of `BUFFERED_BYTES` or more are appended to `buffers`, if given (see the module)."""
    if refs and id(value) in refs and not isinstance(value, bool | int | float | str | type(None)):
        return {"$ref": refs[id(value)]}
    if depth > MAX_DEPTH:
        return {"$opaque": "a value nested too deeply"}
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else {"$bigint": str(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, complex):
        return {"$complex": [encode(value.real), encode(value.imag)]}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    inner = [refs, depth + 1, buffers]
    if isinstance(value, list):
        return [encode(item, *inner) for item in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode(item, *inner) for item in value]}
    if isinstance(value, dict):
        return {"$dict": [[encode(k, *inner), encode(v, *inner)] for k, v in value.items()]}
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            return {"$opaque": "a NumPy array of Python objects"}
        if buffers is not None and value.nbytes >= BUFFERED_BYTES:
            return {"$array": _buffered(value, buffers)}
        return {"$array": _npy(value)}
    if isinstance(value, np.generic) and not isinstance(value, np.object_):
        return {"$scalar": _npy(np.asarray(value))}
    if is_device_array(value):
        host = value.copy_to_host()
        if buffers is not None and host.nbytes >= BUFFERED_BYTES:
            return {"$device": _buffered(host, buffers)}
        return {"$device": _npy(host)}
    if dataclasses.is_dataclass(value) and type(value) in _dataclass_types().values():
        fields = {f.name: encode(getattr(value, f.name), *inner) for f in dataclasses.fields(value)}
        return {"$dataclass": type(value).__name__, "fields": fields}
    return {"$opaque": f"a {type(value).__module__}.{type(value).__qualname__} object"}


def decode(data, resolve=None, depth: int = 0, buffers=None):
    """The value that `encode` wrote; `resolve(path)` gives the object a `$ref` names;
    `buffers` (bytes-like) are those `encode` appended to."""
    if depth > MAX_DEPTH + 1:
        raise WireError("a value nested too deeply")
    if data is None or isinstance(data, bool | int | float | str):
        return data
    inner = [resolve, depth + 1, buffers]
    if isinstance(data, list):
        return [decode(item, *inner) for item in data]
    if not isinstance(data, dict) or len(data) > 2:
        raise WireError(f"not a value the wire writes: {type(data).__name__}")
    tag, body = next(iter(data.items()), (None, None))
    if tag == "$tuple" and isinstance(body, list):
        return tuple(decode(item, *inner) for item in body)
    if tag == "$dict" and isinstance(body, list):
        if not all(isinstance(pair, list) and len(pair) == 2 for pair in body):
            raise WireError("a dict must be a list of [key, value] pairs")
        out = {}
        for key, item in body:
            key = decode(key, *inner)
            try:
                out[key] = decode(item, *inner)
            except TypeError:  # an unhashable key
                raise WireError("a dict key that cannot be a key") from None
        return out
    if tag == "$array":
        return _from_buffer(body, buffers) if isinstance(body, dict) else _from_npy(body)
    if tag == "$scalar":
        array = _from_npy(body)
        if array.ndim != 0:
            raise WireError("a scalar must be a 0-d array")
        return array[()]
    if tag == "$device":
        from numba import cuda

        return cuda.to_device(_from_buffer(body, buffers) if isinstance(body, dict)
                              else _from_npy(body))
    if tag == "$bigint" and isinstance(body, str) and body.lstrip("-").isdigit() \
            and len(body) < 5000:
        return int(body)
    if tag == "$float" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "$complex" and isinstance(body, list) and len(body) == 2:
        real, imag = (decode(part, *inner) for part in body)
        if not all(isinstance(part, float | int) for part in (real, imag)):
            raise WireError("a complex number needs two real parts")
        return complex(real, imag)
    if tag == "$bytes" and isinstance(body, str):
        return base64.b64decode(body, validate=True)
    if tag == "$dataclass":
        cls = _dataclass_types().get(body)
        fields = data.get("fields")
        if cls is None or not isinstance(fields, dict):
            return Opaque(f"a {body!r} record")
        known = {f.name for f in dataclasses.fields(cls)}
        if set(fields) != known:
            raise WireError(f"a {body} needs the fields {sorted(known)}")
        return cls(**{name: decode(item, *inner) for name, item in fields.items()})
    if tag == "$ref":
        if resolve is None:
            raise WireError("a reference where none is allowed")
        return resolve(body)
    if tag == "$opaque" and isinstance(body, str):
        return Opaque(body)
    raise WireError(f"not a value the wire writes: tag {str(tag)[:40]!r}")


def fingerprint(value) -> str:
    """A digest of a call's arguments (arrays by dtype, shape and bytes; an object the wire
    does not carry by its type; a NumPy random generator by its state)."""
    digest = hashlib.sha256()

    def feed(item, depth=0):
        digest.update(b"|")
        if depth > MAX_DEPTH:
            return digest.update(b"deep")
        if isinstance(item, np.ndarray) or is_device_array(item):
            array = item if isinstance(item, np.ndarray) else item.copy_to_host()
            digest.update(f"array {array.dtype.str} {array.shape}".encode())
            if not array.dtype.hasobject:
                digest.update(array.tobytes())
            return None
        if isinstance(item, list | tuple):
            digest.update(f"{type(item).__name__} {len(item)}".encode())
            return [feed(part, depth + 1) for part in item]
        if isinstance(item, dict):
            digest.update(f"dict {len(item)}".encode())
            return [feed(part, depth + 1) for pair in item.items() for part in pair]
        if isinstance(item, np.random.Generator):
            return digest.update(repr(item.bit_generator.state).encode())
        if item is None or isinstance(item, bool | int | float | complex | str | bytes |
                                      np.generic):
            return digest.update(f"{type(item).__name__} {item!r}".encode())
        name = getattr(item, "recorded_name", None) or getattr(item, "replayed_name", None)
        if isinstance(name, str):
            return digest.update(f"function {name}".encode())
        digest.update(f"object {type(item).__qualname__}".encode())
        return None

    feed(value)
    return digest.hexdigest()[:32]
