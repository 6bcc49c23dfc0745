"""The autograding kernel: ipykernel behind a fence that takes torch's fused attention away.

The sandbox starts ``python -m lcteach.grading.kernel -f CONNECTION`` instead of
``ipykernel_launcher``. Before any student code runs, ``fence()`` replaces torch's
scaled_dot_product_attention (its Python entry points and its ATen kernels) and FlexAttention's
``flex_attention`` with a function that raises ``FencedOff``: a graded function that calls
them fails its checks with a message naming the call, as lcteach's references, which the
sandbox does not hold, fail with ModuleNotFoundError. The measuring process puts up the
same fence (``lcteach.grading.worker``).
"""

from __future__ import annotations

import warnings

# ATen operators of fused attention, with the dispatch key whose kernel the fence replaces.
FENCED_OPERATORS = (
    ("scaled_dot_product_attention", "CompositeImplicitAutograd"),
    ("_scaled_dot_product_attention_math", "CompositeImplicitAutograd"),
    ("_scaled_dot_product_flash_attention_for_cpu", "CPU"),
    ("_fused_sdp_choice", "CPU"),
)
_LIBRARIES: list = []  # the fence's torch.library registrations stay alive with the process


class FencedOff(RuntimeError):
    """A graded function called fused attention, which graded runs do not offer."""


def _refuse(name: str):
    def refuse(*args, **kwargs):
        raise FencedOff(f"{name} is not available in graded runs: write the attention with plain torch operations")

    refuse.__name__ = name
    return refuse


def fence() -> None:
    """Make torch's fused attention and FlexAttention unavailable in this process."""
    import torch
    import torch.nn.functional
    from torch.nn.attention import flex_attention

    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Overriding a previously registered kernel"
        for operator, key in FENCED_OPERATORS:
            library.impl(operator, _refuse(f"torch.ops.aten.{operator}"), key)
    _LIBRARIES.append(library)
    torch.nn.functional.scaled_dot_product_attention = _refuse("scaled_dot_product_attention")
    flex_attention.flex_attention = _refuse("flex_attention")


if __name__ == "__main__":
    fence()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
