"""The autograding kernel: ipykernel behind a fence that takes torch's fused attention away.

The sandbox starts ``python -m lcteach.grading.kernel -f CONNECTION`` instead of
``ipykernel_launcher``. Before any student code runs, ``fence()`` replaces torch's
scaled_dot_product_attention (its Python entry point and its ATen kernels) and FlexAttention's
``flex_attention`` with a function that raises ``FencedOff``, and ``start_thread_pool()``
creates torch's threads (see there). A graded function that calls fused attention fails
its checks with a message naming the call, as lcteach's references, which the
sandbox does not hold, fail with ModuleNotFoundError. The measuring process puts up the
same fence (``lcteach.grading.worker``).

What holds against student code in the same process:

- the ATen kernels are replaced through a dispatcher registration whose handle no Python object
  refers to (its reference is leaked, and the handle is not tracked by the garbage collector),
  so nothing can find it to take the registration back; a new registration cannot reach the
  kernels it hides;
- FlexAttention's module is fenced again whenever it is (re)loaded (a finder first on
  ``sys.meta_path``). A student who rebuilds it from torch's source gets its eager path, which
  on CPU is dense attention with the n x n scores in memory; its compiled path needs a compiler
  process, which the measuring process cannot start. The code reading names such calls to
  the instructor.
"""

from __future__ import annotations

import ctypes
import importlib.abc
import importlib.machinery
import sys
import warnings

# ATen operators of fused attention, with the dispatch key whose kernel the fence replaces.
FENCED_OPERATORS = (
    ("scaled_dot_product_attention", "CompositeImplicitAutograd"),
    ("_scaled_dot_product_attention_math", "CompositeImplicitAutograd"),
    ("_scaled_dot_product_flash_attention_for_cpu", "CPU"),
    ("_fused_sdp_choice", "CPU"),
)
FLEX_MODULE = "torch.nn.attention.flex_attention"


class FencedOff(RuntimeError):
    """A graded function called fused attention, which graded runs do not offer."""


def _refuse(name: str):
    def refuse(*args, **kwargs):
        raise FencedOff(f"{name} is not available in graded runs: write the attention with plain torch operations")

    refuse.__name__ = name
    return refuse


class _FencedLoader(importlib.abc.Loader):
    """Loads FlexAttention's module as its own loader does, then fences it."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        module.flex_attention = _refuse("flex_attention")


class _Refence(importlib.abc.MetaPathFinder):
    """Gives FlexAttention's module the fencing loader whenever it is found (imports, reloads)."""

    def find_spec(self, name, path, target=None):
        if name != FLEX_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _FencedLoader(spec.loader)
        return spec


def fence() -> None:
    """Make torch's fused attention and FlexAttention unavailable in this process."""
    import torch
    import torch.nn.functional

    handle = torch._C._dispatch_library("IMPL", "aten", "", "lcteach.grading.kernel", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Overriding a previously registered kernel"
        for operator, key in FENCED_OPERATORS:
            handle.impl(operator, key, _refuse(f"torch.ops.aten.{operator}"), False)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(handle))  # the registration lives as long as the process
    del handle
    torch.nn.functional.scaled_dot_product_attention = _refuse("scaled_dot_product_attention")
    sys.meta_path.insert(0, _Refence())
    importlib.import_module(FLEX_MODULE).flex_attention = _refuse("flex_attention")  # loaded before the finder


def start_thread_pool() -> None:
    """Create torch's OpenMP threads now, before student code: libgomp ends the process when it
    cannot create them later, so a notebook whose forks hold the process limit would otherwise
    kill the kernel in its next cell, and the later parts with it."""
    import torch

    torch.zeros(2**20).add_(1)  # large enough to run on every intra-op thread


if __name__ == "__main__":
    fence()
    start_thread_pool()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
