"""Model weights kept on the device between calls (chapter 11: GPUs with numba.cuda).

Copying a weight from host memory to the GPU crosses the PCIe bus (~25 GB/s), far slower than
the GPU reads its own memory (~1-3 TB/s): a decoding step that copied every weight again would
spend its time on the bus. So the first cuda forward of a model copies each weight once, and
later calls find the copy here:

    with resident(model):          # entered by model.forward(..., backend="cuda")
        kernels.linear(x, w, b)    # w, b are model.params arrays: their device copies are used

`DeviceWeights` holds the copies of one model, keyed by the identity of the host arrays (and
of views of them, such as the tied head `tok_emb.T`, copied once in their own layout); a
QuantizedTensor's packed bytes, scales and codebook are one entry. Activations are copied in
and out by each kernel call. A parameter *replaced* in `model.params` is noticed (all copies
are remade); a parameter changed *in place* is not: make a new model after editing weights.
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref

import numpy as np

from .device import to_device


class DeviceWeights:
    """The device copies of one model's parameters, made on first use."""

    def __init__(self, params: dict):
        self.hosts = {id(value): value for value in params.values()}  # kept alive: ids stay
        self.copies: dict[tuple, object] = {}

    def matches(self, params: dict) -> bool:
        return self.hosts.keys() == {id(value) for value in params.values()}

    def lookup(self, raw, make):
        """The device copy of `raw` (made by `make()` on first use) if `raw` is a parameter or a
        view of one, else None."""
        node = raw
        while node is not None and id(node) not in self.hosts:
            node = node.base if isinstance(node, np.ndarray) else None
        if node is None:
            return None
        key = (id(node),) if raw is node else (
            id(node), raw.__array_interface__["data"][0], raw.shape, raw.strides)
        if key not in self.copies:
            self.copies[key] = make()
        return self.copies[key]


_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> DeviceWeights
_ACTIVE = contextvars.ContextVar("minilm_cuda_weights", default=None)


@contextlib.contextmanager
def resident(model):
    """Within this context, kernel arguments that are `model.params` (or views of them) use
    device copies that outlive the call."""
    weights = _MODELS.get(model)
    if weights is None or not weights.matches(model.params):
        weights = _MODELS[model] = DeviceWeights(model.params)
    token = _ACTIVE.set(weights)
    try:
        yield weights
    finally:
        _ACTIVE.reset(token)


def on_device(raw, make):
    """The device form of a weight argument: the resident copy when `raw` is a parameter of the
    model whose step is running, else a fresh one. `make`: a host array to copy, or a function
    that makes the device form (e.g. of a QuantizedTensor)."""
    build = make if callable(make) else (lambda: to_device(make))
    weights = _ACTIVE.get()
    found = None if weights is None else weights.lookup(raw, build)
    return build() if found is None else found
