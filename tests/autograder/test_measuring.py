"""Measuring from outside: a fresh sandboxed process, its peak memory and CPU time read from /proc."""

import os

import pytest
import torch
from conftest import needs_sandbox

from autograder.judging import SharedMeasurer
from autograder.measuring import HELD_ALLOWANCE, MeasuringProcess, python_source
from lcteach.grading.channel import ChannelTimeout, StudentRaised

pytestmark = needs_sandbox

CELLS = [
    "import math\nimport torch\n",
    """
def dense(q, k, v, block_size=256):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores, -1) @ v, torch.logsumexp(scores, -1)


def tiled(q, k, v, block_size=256):
    out, lse = torch.empty_like(q), torch.empty(q.shape[:-1])
    for i in range(0, q.shape[-2], block_size):
        qi = q[..., i : i + block_size, :]
        m = torch.full(qi.shape[:-1], -math.inf)
        l, acc = torch.zeros(qi.shape[:-1]), torch.zeros_like(qi)
        for j in range(0, k.shape[-2], block_size):
            s = qi @ k[..., j : j + block_size, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
            new = torch.maximum(m, s.amax(-1))
            p, c = torch.exp(s - new[..., None]), torch.exp(m - new)
            l, acc, m = l * c + p.sum(-1), acc * c[..., None] + p @ v[..., j : j + block_size, :], new
        out[..., i : i + block_size, :] = acc / l[..., None]
        lse[..., i : i + block_size] = m + torch.log(l)
    return out, lse
""",
    "raise RuntimeError('a failing cell is skipped, as in the notebook')",
    "import os, subprocess\n"
    "def forks():\n    return os.fork()\n"
    "def spawns():\n    return subprocess.run(['true']).returncode\n"
    "def fused(q):\n    return torch.nn.functional.scaled_dot_product_attention(q, q, q)\n"
    "def reference(q):\n    import lcteach.kernels\n    return lcteach.kernels.dense_attention(q, q, q)\n"
    "def resets_its_peak():\n    open('/proc/self/clear_refs', 'w').write('5')\n"
    "def pooled(q):\n    from concurrent.futures import ThreadPoolExecutor\n"
    "    with ThreadPoolExecutor(8) as pool:\n        return sum(pool.map(lambda row: float(row.sum()), q))\n"
    "def unfenced(q):\n    import importlib, torch.nn.attention.flex_attention as flex\n"
    "    return importlib.reload(flex).flex_attention(q, q, q)\n"
    "def threads(q):\n    import threading\n    out = []\n"
    "    t = threading.Thread(target=lambda: out.append(q @ q.transpose(-2, -1)))\n    t.start(); t.join()\n"
    "    return out[0].sum()\n",
]


RESERVING = (
    "reserved = torch.ones(8192, 8192)  # allocated before the call, used by `preallocated`\n"
    "def preallocated(q, k, v, block_size=256):\n"
    "    torch.matmul(q[0, 0], k[0, 0].T, out=reserved)\n"
    "    return reserved.softmax(-1) @ v, reserved.logsumexp(-1)\n"
)


def measurer(name: str, *extra: str) -> MeasuringProcess:
    return MeasuringProcess([*CELLS, *extra], name, uid=100_000_000 + os.getpid())


def peaks(name: str, *extra: str) -> list[int]:
    with measurer(name, *extra) as process:
        q = torch.randn(1, 1, 8192, 64)
        return [
            process.measure(process.student, q[..., :n, :], q[..., :n, :], q[..., :n, :]).peak_bytes
            for n in (2048, 8192)
        ]


def test_a_dense_solution_is_seen_to_allocate_n_squared_and_a_tiled_one_not():
    dense, tiled = peaks("dense"), peaks("tiled")
    score_matrix = 8192 * 8192 * 4
    assert dense[1] > score_matrix  # 256 MiB of scores, and its softmax
    assert tiled[1] < 32 * 2**20 and tiled[1] < 4 * tiled[0] + 8 * 2**20


def test_memory_reserved_by_the_cells_before_the_call_counts():
    """All of it but the allowance for what an honest notebook's cells keep."""
    assert peaks("preallocated", RESERVING)[1] > 8192 * 8192 * 4 - HELD_ALLOWANCE


def test_what_the_cells_keep_counts_only_past_the_allowance():
    keeps = "kept = torch.ones(4 * 2**20)  # 16 MiB a notebook holds: a dataset, a figure\n"
    assert peaks("tiled", keeps)[1] < peaks("tiled")[1] + 4 * 2**20


def test_the_measured_call_returns_its_value_and_cpu_time():
    with measurer("tiled") as process:
        q = torch.randn(1, 1, 1024, 32)
        measured = process.measure(process.student, q, q, q)
        out, lse = measured.value
        expected = torch.softmax(q @ q.transpose(-2, -1) / 32**0.5, -1) @ q
        assert torch.allclose(out, expected, atol=1e-5) and lse.shape == (1, 1, 1024)
        assert 0 < measured.cpu_seconds < 30


@pytest.mark.parametrize("name", ["forks", "spawns"])
def test_the_measuring_process_cannot_start_processes(name):
    with measurer(name) as process, pytest.raises(StudentRaised) as raised:
        process.client.call(process.student)
    assert raised.value.is_a(OSError)


def test_threads_run_and_count_in_the_process():
    with measurer("threads") as process:
        measured = process.measure(process.student, torch.randn(4096, 64))
        assert measured.peak_bytes > 4096 * 4096 * 4 * 0.9


def test_fused_attention_and_the_references_are_not_there():
    q = torch.randn(1, 1, 4, 2)
    with measurer("fused") as process, pytest.raises(StudentRaised) as raised:
        process.client.call(process.student, q)
    assert raised.value.type_name == "FencedOff" and raised.value.is_a(RuntimeError)
    with measurer("reference") as process, pytest.raises(StudentRaised) as raised:
        process.client.call(process.student, q)
    assert raised.value.is_a(ImportError)


def test_the_measuring_process_cannot_reset_its_own_peak():
    with measurer("resets_its_peak") as process, pytest.raises(StudentRaised) as raised:
        process.client.call(process.student)
    assert raised.value.is_a(OSError)  # /proc is read-only in the sandbox


def test_a_thread_pool_runs_in_the_measuring_process():
    with measurer("pooled") as process:
        q = torch.ones(64, 16)
        assert process.measure(process.student, q).value == 64 * 16


def test_flex_attention_stays_fenced_when_its_module_is_reloaded():
    with measurer("unfenced") as process, pytest.raises(StudentRaised) as raised:
        process.client.call(process.student, torch.randn(1, 1, 128, 16))
    assert raised.value.type_name == "FencedOff"


def test_cells_with_ipython_syntax_run_as_ipython_would():
    cells = ["%matplotlib inline\nimport torch\n!echo shell", "%%time\ndef timed(x):\n    return x + 1\n"]
    assert python_source("%%bash\nrm -rf /tmp/x") == ""
    with MeasuringProcess(cells, "timed", uid=100_000_000 + os.getpid()) as process:
        assert process.measure(process.student, 41).value == 42


def test_a_released_process_serves_the_next_part_running_only_the_new_cells():
    first = ["runs = []", "runs.append('first')\ndef seen():\n    return list(runs)"]
    later = [*first, "runs.append('later')\ndef twice(x):\n    return 2 * x"]
    with MeasuringProcess(first, "seen", uid=100_000_000 + os.getpid()) as process:
        assert process.measure(process.student).value == ["first"]
        process.release()
        assert process.continues(later) and not process.continues(["something else", *later])
        process.setup(later, "twice")
        assert process.measure(process.student, 21).value == 42
        process.release()
        process.setup(first, "seen")  # the cells it ran, none of them again
        assert process.measure(process.student).value == ["first", "later"]


def test_the_shared_measurer_replaces_a_process_a_part_left_broken():
    cells = ["import time\ndef sleeps(s):\n    time.sleep(s)\n    return s"]
    shared = SharedMeasurer(uid=100_000_000 + os.getpid(), call_seconds=2)
    try:
        process = shared(cells, "sleeps")
        assert process.measure(process.student, 0).value == 0
        process.release()
        assert shared(cells, "sleeps") is process  # released in good order: used again
        with pytest.raises(ChannelTimeout):
            process.measure(process.student, 30)
        process.release()
        fresh = shared(cells, "sleeps")
        assert fresh is not process and fresh.pid != process.pid
        assert process.process.poll() is not None  # the broken one is gone
        assert fresh.measure(fresh.student, 0).value == 0
    finally:
        shared.close()
    assert fresh.process.poll() is not None
