"""Peak tensor memory of a piece of torch code, measured exactly and on any device.

``track_peak_memory`` watches every tensor that torch operators allocate while it is
active (a TorchDispatchMode), keeps a count of the bytes still alive and records the
largest value. It is deterministic (unlike process RSS), needs no profiler and works on
CPU, where torch has no memory statistics. It counts tensor storage only: inputs created
before tracking and a kernel's private scratch space are not included.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode


@dataclass
class MemoryReport:
    """Bytes of tensor storage allocated inside the tracked block: peak and still alive."""

    peak_bytes: int = 0
    live_bytes: int = 0
    _storages: dict[int, list[int]] = field(default_factory=dict, repr=False)

    def _add(self, tensor: torch.Tensor, inputs) -> None:
        storage = tensor.untyped_storage()
        key, nbytes = storage.data_ptr(), storage.nbytes()
        if nbytes == 0:
            return
        if key in self._storages:
            self._storages[key][0] += 1
        elif any(t.untyped_storage().data_ptr() == key for t in inputs):
            return  # a view of, or in-place write to, memory that existed before tracking
        else:
            self._storages[key] = [1, nbytes]
            self.live_bytes += nbytes
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        entry = self._storages.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            del self._storages[key]
            self.live_bytes -= entry[1]


class _Tracker(TorchDispatchMode):
    def __init__(self, report: MemoryReport):
        super().__init__()
        self.report = report

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        for tensor in _tensors(out):
            self.report._add(tensor, _tensors((args, kwargs)))
        return out


def _tensors(tree):
    """Yield the tensors in nested tuples, lists and dicts (operator arguments and results)."""
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, (tuple, list)):
        for item in tree:
            yield from _tensors(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            yield from _tensors(item)


@contextmanager
def track_peak_memory():
    """Context manager yielding a MemoryReport whose ``peak_bytes`` is filled in as code runs.

    >>> with track_peak_memory() as mem:
    ...     x = torch.ones(1024)        # 4 KiB
    >>> mem.peak_bytes
    4096
    """
    report = MemoryReport()
    with _Tracker(report):
        yield report


def peak_memory(fn, *args, **kwargs) -> tuple[object, int]:
    """Run ``fn(*args, **kwargs)``; return (its result, peak bytes of tensors it allocated)."""
    with track_peak_memory() as report:
        result = fn(*args, **kwargs)
    return result, report.peak_bytes
