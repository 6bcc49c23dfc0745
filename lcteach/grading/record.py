"""The grading record: what a student's functions returned, as plain data.

A graded call runs the student's code in the (sandboxed) kernel and records every result it
returned, or the error it raised, as JSON-safe data: tensors as dtype, shape and raw bytes;
numbers, strings, booleans, None, tuples and lists as themselves; anything else only as its
type name. The record leaves the kernel in the cell's output, and a trusted process replays
the same checks against it (``lcteach.grading.core.judge``): the score never rests on an
object, a comparison or a patched function of the student's process.

``encode`` never runs student code: it reads tensors of the exact type ``torch.Tensor``
through torch's C functions and calls nothing on other objects but ``type()``.
"""

from __future__ import annotations

import base64
import math

import numpy as np
import torch

from lcteach.grading import MIMETYPE, RecordError  # noqa: F401  (re-exported: record.MIMETYPE, record.RecordError)

VERSION = 1
MAX_TENSOR_BYTES = 16 * 2**20  # a larger tensor is recorded by its type alone
MAX_ITEMS = 4096  # so is a longer tuple or list

_DTYPES = {
    str(dtype).removeprefix("torch."): dtype
    for dtype in (
        torch.float64,
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.int8,
        torch.uint8,
        torch.bool,
        torch.complex64,
        torch.complex128,
    )
}


class Opaque:
    """Stands in for a result that is not plain data; its class is named after the original type."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object>"


class OpaqueFunction(Opaque):
    """Stands in for a function the student returned (e.g. a mask_mod); replay never calls it."""

    def __call__(self, *args, **kwargs):
        raise RuntimeError("a recorded function cannot run; its calls are replayed from the record")


def _opaque(name: str, is_callable: bool) -> Opaque:
    return type(name, (OpaqueFunction if is_callable else Opaque,), {})()


def encode(value, depth: int = 0):
    """Plain JSON data for a student's result (see the module docstring)."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float or isinstance(value, np.floating) and kind.__module__ == "numpy":
        number = float(value)
        return number if math.isfinite(number) else {"float": repr(number)}
    if isinstance(value, (np.integer, np.bool_)) and kind.__module__ == "numpy":
        return value.item()
    if kind in (tuple, list) and depth < 4 and len(value) <= MAX_ITEMS:
        return {kind.__name__: [encode(item, depth + 1) for item in value]}
    if kind is torch.Tensor or kind is torch.nn.Parameter:
        return _encode_tensor(value)
    return {"opaque": type_name(value), "callable": callable(value)}


def type_name(value) -> str:
    """The name of ``value``'s class, read without running a metaclass's code."""
    name = vars(type)["__name__"].__get__(type(value), type)
    return name[:80] if name.isidentifier() else "object"


def _encode_tensor(tensor: torch.Tensor):
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype not in _DTYPES or tensor.layout != torch.strided or tensor.is_meta:
        kind = "meta" if tensor.is_meta else str(tensor.layout).removeprefix("torch.")
        return {"opaque": f"Tensor_{kind}_{dtype}", "callable": False}
    if tensor.numel() * tensor.element_size() > MAX_TENSOR_BYTES:
        return {"opaque": "Tensor_over_16MiB", "callable": False}
    data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return {"tensor": {"dtype": dtype, "shape": list(tensor.shape), "data": base64.b64encode(data).decode()}}


def decode(data):
    """The value ``encode`` recorded; raises RecordError on anything it would not have written."""
    if data is None or type(data) in (bool, int, str):
        return data
    if type(data) is float:
        return data
    if type(data) is not dict or len(data) not in (1, 2):
        raise RecordError(f"unexpected entry {type(data).__name__}")
    if "float" in data:
        return float(_expect(data["float"], str, "float"))
    if "tuple" in data:
        return tuple(decode(item) for item in _expect(data["tuple"], list, "tuple"))
    if "list" in data:
        return [decode(item) for item in _expect(data["list"], list, "list")]
    if "tensor" in data:
        return _decode_tensor(_expect(data["tensor"], dict, "tensor"))
    if "opaque" in data:
        name = _expect(data["opaque"], str, "opaque")
        return _opaque(name if name.isidentifier() else "object", bool(data.get("callable")))
    raise RecordError(f"unknown entry {sorted(data)}")


def _decode_tensor(data: dict) -> torch.Tensor:
    dtype = _DTYPES.get(data.get("dtype"))
    shape = data.get("shape")
    if dtype is None or type(shape) is not list or not all(type(s) is int and s >= 0 for s in shape):
        raise RecordError("tensor entry with a bad dtype or shape")
    raw = base64.b64decode(_expect(data.get("data"), str, "tensor data"), validate=True)
    if len(raw) != math.prod(shape) * torch.empty((), dtype=dtype).element_size():
        raise RecordError("tensor entry whose data does not match its shape")
    return (
        torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape)
        if raw
        else torch.empty(shape, dtype=dtype)
    )


def _expect(value, kind: type, what: str):
    if type(value) is not kind:
        raise RecordError(f"{what} entry holds {type(value).__name__}, expected {kind.__name__}")
    return value
