"""The answer is not on the shelf: library functions an exercise asks students to write
themselves cannot be used by their code while it is graded (README: "Grading you can trust").

Each test cell names the library functions that already compute its exercise's answer, in the
comment it opens with (part of the locked cell, so a student cannot change it):

    # Off limits when graded (this exercise asks you to write them):
    #   minilm.kbit.pack, minilm.kbit.pack_reference

While the student's kernel runs that test cell, `clear` makes those functions raise `OffLimits`
whenever they are called from inside the student's code (directly, through another name, or
through another library function); the test's own calls of them, as its references, still
work. A Python function is changed in place (its code object swapped), so every alias of it,
`from minilm.kbit import pack` or a default argument, is covered too; a compiled Numba function
(or a closure) is replaced under every name that holds it in the library's modules, in their
tables (`kbit.MATMUL_VERSIONS`) and in the notebook. `restore` undoes it after the cell.

This runs in the student's process, so it stops a solution that calls the library; a student
set on it can dig the original code out of this module (the implementation is inside the
sandbox), which is copying the library's code by other means.
"""

from __future__ import annotations

import importlib
import re
import sys
import types

OFF_LIMITS = re.compile(r"^off limits when graded[^:]*:(?P<names>.*)$", re.IGNORECASE)


class OffLimits(Exception):
    """A library function that computes the exercise's answer, called by the student's code."""


def declared(source: str) -> tuple[str, ...]:
    """The names in a test cell's opening comment "Off limits when graded: ..." (none: ())."""
    opening = []
    for line in source.split("\n"):
        if not line.startswith("#"):
            break
        opening.append(line.lstrip("#").strip())
    found = OFF_LIMITS.search(" ".join(opening))
    if not found:
        return ()
    return tuple(name.strip() for name in found["names"].split(",") if name.strip())


def resolve(dotted: str):
    """The object a name gives: `minilm.optim.AdamW.step`, an attribute of a package first
    (`minilm.kbit.pack` is the function, not its module), or `module:attribute` where a
    module's name is taken by an attribute (`minilm.kbit.matmul:matmul_reference`), or an entry
    of a dict (`minilm.kbit.MATMUL_VERSIONS[v2]`). None if none."""
    module, _, attributes = dotted.rpartition(":") if ":" in dotted else ("", "", dotted)
    parts = attributes.split(".")
    try:
        obj = importlib.import_module(module or parts.pop(0))
        for part in parts:
            part, _, key = part.partition("[")  # MATMUL_VERSIONS[v2]: an entry of a dict
            if key and isinstance(getattr(obj, part, None), dict):
                obj = getattr(obj, part).get(key.rstrip("]"))
            elif hasattr(obj, part) and not key:
                obj = getattr(obj, part)
            elif isinstance(obj, types.ModuleType) and not module:
                obj = importlib.import_module(f"{obj.__name__}.{part}")
            else:
                return None
    except ImportError:
        return None
    return obj


_swapped: list = []  # (function, its own code) for each function changed in place
_replaced: list = []  # (a dict, key, the object it held) for each name replaced
_guards: dict = {}  # id -> (dotted name, the original, callable)


def _in_student_code() -> bool:  # replaced by `clear`
    return False


def _dispatch(key: int, args, kwargs):
    name, original = _guards[key]
    if _in_student_code():
        raise OffLimits(f"this exercise asks you to write it: your code called {name}, which "
                        "computes its answer, and the library's answer does not count when "
                        "graded")
    return original(*args, **kwargs)


def clear(names, namespace: dict, in_student_code) -> None:
    """Make each of `names` raise OffLimits while `in_student_code()` is true."""
    global _in_student_code
    restore()
    _in_student_code = in_student_code
    for name in names:
        target = resolve(name)
        if target is None:
            continue
        function = getattr(target, "__func__", target)  # a method: its function
        key = len(_guards) + 1
        if isinstance(function, types.FunctionType) and not function.__closure__:
            _guards[key] = (name, types.FunctionType(
                function.__code__, function.__globals__, function.__name__,
                function.__defaults__, None))
            _guards[key][1].__kwdefaults__ = function.__kwdefaults__
            scope: dict = {}
            exec(f"def guard(*args, **kwargs):\n    return __minilm_shelf__({key}, args, kwargs)",
                 scope)
            function.__globals__["__minilm_shelf__"] = _dispatch
            _swapped.append((function, function.__code__))
            function.__code__ = scope["guard"].__code__
        elif callable(target):  # a Numba function (or a closure): replaced under every name
            _guards[key] = (name, target)
            guard = _named_guard(key)
            modules = [vars(m) for m in list(sys.modules.values())
                       if getattr(m, "__name__", "").startswith("minilm")]
            tables = [v for d in modules for v in list(d.values()) if isinstance(v, dict)]
            for holder in [namespace, *modules, *tables]:
                for attribute, value in list(holder.items()):
                    if value is target:
                        _replaced.append((holder, attribute, value))
                        holder[attribute] = guard


def _named_guard(key: int):
    def guard(*args, **kwargs):
        return _dispatch(key, args, kwargs)
    return guard


def restore() -> None:
    """Every function as it was."""
    while _swapped:
        function, code = _swapped.pop()
        function.__code__ = code
    while _replaced:
        holder, attribute, value = _replaced.pop()
        holder[attribute] = value
    _guards.clear()
