"""The autograding kernel's sandbox: hostile cells run, and fail to reach anything outside it."""

import os
import socket

import nbformat
import pytest
from conftest import needs_sandbox
from nbclient import NotebookClient

from autograder.sandbox import SandboxedKernelManager

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = needs_sandbox


def run_cells(workdir, *cells: str, timeout: int = 60, **limits):
    """Execute cells in a sandboxed kernel; return each cell's printed text and error names."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}

    class Manager(SandboxedKernelManager):
        pass

    for name, value in limits.items():
        setattr(Manager, name, value)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        kernel_manager_class=Manager,
        allow_errors=True,
        interrupt_on_timeout=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return ["".join(o.get("text", "") + o.get("ename", "") for o in cell.outputs) for cell in notebook.cells]


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """One sandboxed kernel run that tries every escape; the tests read its answers."""
    workdir = tmp_path_factory.mktemp("submission")
    (workdir / "data.txt").write_text("mine")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        return workdir, run_cells(
            workdir,
            "import os; print(os.getuid(), open('data.txt').read())",
            f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('reached')\n"
            "except OSError as e: print('blocked', type(e).__name__)",
            f"import os; print([os.path.exists(os.path.join({REPO!r}, p)) for p in "
            "('solutions', 'autograder', 'tests', 'course', 'lcteach')])",
            f"try:\n    open(os.path.join({REPO!r}, 'lcteach', 'pwned.py'), 'w'); print('wrote')\n"
            "except OSError as e: print('refused', type(e).__name__)",
            "open('result.txt', 'w').write('ok'); print('scratch ok', os.getcwd())\n"
            f"try:\n    open(os.path.join({str(workdir)!r}, 'result.txt'), 'w'); print('wrote the submission')\n"
            "except OSError as e: print('submission read-only', type(e).__name__)",
            "import lcteach, torch\ntry:\n    lcteach.dense_attention\nexcept ImportError as e: print('no reference', type(e).__name__)\n"
            "from lcteach.grading import week1, channel\nfrom lcteach.measure import peak_memory, format_bytes\n"
            "try:\n    torch.nn.functional.scaled_dot_product_attention(*(torch.ones(1, 1, 2, 2),) * 3)\n"
            "except RuntimeError as e: print('fenced', type(e).__name__)",
            "try:\n    block = bytearray(8 * 2**30); print('allocated')\nexcept MemoryError: print('memory limited')",
            "try:\n    open('/tmp/huge', 'wb').write(b'0' * (128 * 2**20)); print('wrote huge')\n"
            "except OSError as e: print('file limited', type(e).__name__)",
            "private = os.path.dirname(os.environ['LCTEACH_GRADING_SOCKET'])\n"
            "for path in (os.path.join(private, 'fill'), '/proc/self/clear_refs'):\n"
            "    try:\n        open(path, 'w').write('5'); print('wrote', path)\n"
            "    except OSError as e: print('read-only', type(e).__name__)",
        )
    finally:
        listener.close()


def test_runs_as_an_unprivileged_user_in_a_scratch_copy_of_its_folder(probe):
    workdir, outputs = probe
    uid, data = outputs[0].split()
    own = SandboxedKernelManager.uid_base.default_value + os.getpid() if os.geteuid() == 0 else os.getuid()
    assert int(uid) == own and data == "mine"
    assert outputs[4].split() == ["scratch", "ok", "/tmp/submission", "submission", "read-only", "OSError"]
    assert not (workdir / "result.txt").exists()


def test_no_network_not_even_the_hosts_loopback(probe):
    assert outputs_of(probe, 1).startswith("blocked")


def test_the_repository_and_the_references_are_invisible(probe):
    assert outputs_of(probe, 2) == "[False, False, False, False, True]"
    assert outputs_of(probe, 3).startswith("refused")
    assert outputs_of(probe, 5).split() == ["no", "reference", "ModuleNotFoundError", "fenced", "FencedOff"]


def test_memory_and_file_size_are_limited(probe):
    assert outputs_of(probe, 6) == "memory limited"
    assert outputs_of(probe, 7).startswith(("file limited", "OSError")), outputs_of(probe, 7)


def test_the_private_folder_and_proc_are_read_only(probe):
    """The grader's socket folder is on the host: nothing written there would be bounded."""
    assert outputs_of(probe, 8).split() == ["read-only", "OSError", "read-only", "OSError"]


def test_a_fork_bomb_is_stopped_and_the_kernel_survives(tmp_path):
    """libgomp ends a process that cannot create its threads: the kernel creates them before student code."""
    outputs = run_cells(
        tmp_path,
        "import os\nchildren = 0\ntry:\n    while children < 10_000:\n        pid = os.fork()\n"
        "        if pid == 0:\n            import time; time.sleep(30); os._exit(0)\n        children += 1\n"
        "except OSError as e:\n    print('stopped after', children, type(e).__name__)",
        # torch's first parallel operation in this kernel, while the forks hold the process limit
        "import torch\nx = torch.zeros(2**22)\nx.add_(1)\nprint('still alive', int(x.sum()))",
        processes=40,
    )
    assert outputs[0].startswith("stopped after") and int(outputs[0].split()[2]) < 40
    assert outputs[1].strip() == f"still alive {2**22}"


def outputs_of(probe, index: int) -> str:
    return probe[1][index].strip()


def test_a_cell_past_its_time_is_interrupted_and_the_next_runs(tmp_path):
    """The interrupt travels as a message: a signal to bubblewrap would not reach the kernel."""
    outputs = run_cells(tmp_path, "while True:\n    pass", "print('next cell ran')", timeout=5)
    assert "KeyboardInterrupt" in outputs[0]
    assert outputs[1].strip() == "next cell ran"
