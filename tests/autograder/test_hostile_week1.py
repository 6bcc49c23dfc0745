"""The hostile corpus of Week 1: crafted submissions graded in one batch with honest neighbours.

Each case starts from the full solution and edits it as a student trying a trick would; it
must score what its functions earn and no more (tests/hostile_corpus.py). Part points:
dense_attention 3, causal_mask 1, sliding_window 2, online_softmax_step 3, tiled_attention 4
(its last check, 2 points, measures peak memory from outside: budget 32 MiB at n=8192),
process_in_chunks 3, fit_exponent 2, causal_tiled_attention 4 (its last check, 2 points,
measures CPU time from outside), tiled_attention_backward 4 (its last check, 2 points, measures
peak memory from outside: budget 32 MiB at n=8192), schedule_chunks 2; the written answer (2)
waits for a human.
Set LCTEACH_HOSTILE_CASES=name,name to grade a few cases only (with the honest neighbours).
"""

from __future__ import annotations

import base64

import pytest
from conftest import needs_sandbox
from hostile_corpus import (
    LEAK_CODE,
    MARK,
    WEEK1,
    Case,
    add_cell,
    canary,
    corpus_tests,
    fifo,
    find_cell,
    prefix,
    probe,
    replace,
    selected,
    suffix,
    symlink,
)

pytestmark = [pytest.mark.slow, needs_sandbox]

W = WEEK1
NONE = "    return None\n"  # a function that earns nothing: every check of its part fails
DENSE_TILED = (
    "def _dense_tiled(q, k, v):\n"
    "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
    "    return torch.softmax(scores, dim=-1) @ v, torch.logsumexp(scores, dim=-1)\n"
)
MEMORY = "tiled_attention: peak memory is O(n)"  # the failed check's name in the report
BURNERS, BURN_SECONDS = 16, 40  # processes of the CPU burner, each in a session of its own


def encoded(key: str) -> callable:
    """Replace a cell by an exec of its own source, base64-encoded: the code reading sees nothing."""

    def edit(nb, ctx):
        cell = find_cell(nb, key)
        text = base64.b64encode("".join(cell["source"]).encode()).decode()
        cell["source"] = f"import base64 as _b\nexec(_b.b64decode('{text}').decode())\n"

    return edit


def magics(nb, ctx):
    """What honest notebooks hold: a line magic among the imports, a cell magic on a solution cell."""
    imports = find_cell(nb, "~from lcteach.grading import week1 as grade")
    imports["source"] = "%matplotlib inline\n" + "".join(imports["source"])
    tiled = find_cell(nb, "tiled_attention")
    tiled["source"] = "%%time\n" + "".join(tiled["source"])


CASES = [
    # 1. the measured property evaded inside the student's process: memory is measured from outside
    Case(
        "w1_tiled_numpy",
        1,
        (
            suffix(
                "tiled_attention",
                "def tiled_attention(q, k, v, block_size=128):\n"
                "    qn, kn, vn = (t.detach().numpy() for t in (q, k, v))\n"
                "    s = qn @ np.swapaxes(kn, -1, -2) / math.sqrt(qn.shape[-1])\n"
                "    m = s.max(-1, keepdims=True)\n"
                "    e = np.exp(s - m)\n"
                "    l = e.sum(-1, keepdims=True)\n"
                "    out, lse = (e / l) @ vn, (m + np.log(l))[..., 0]\n"
                "    return torch.from_numpy(np.ascontiguousarray(out)), torch.from_numpy(np.ascontiguousarray(lse))\n",
            ),
        ),
        W.without(tiled_attention=2),
        report=(MEMORY,),
        note="dense attention in numpy, where torch's allocator sees nothing",
    ),
    Case(
        "w1_tiled_thread",
        1,
        (
            suffix(
                "tiled_attention",
                "import threading\n" + DENSE_TILED + "def tiled_attention(q, k, v, block_size=128):\n"
                "    box = []\n"
                "    worker = threading.Thread(target=lambda: box.append(_dense_tiled(q, k, v)))\n"
                "    worker.start()\n"
                "    worker.join()\n"
                "    return box[0]\n",
            ),
        ),
        W.without(tiled_attention=2),
        report=(MEMORY,),
        note="dense attention in a worker thread",
    ),
    Case(
        "w1_tiled_input_storage",
        1,
        (
            suffix(
                "tiled_attention",
                "def tiled_attention(q, k, v, block_size=128):\n"
                "    values = v.clone()\n"
                "    shape = (*q.shape[:-1], k.shape[-2])\n"
                "    try:  # the scores in v's own storage, grown in place\n"
                "        v.resize_(shape)\n"
                "        scores = v\n"
                "    except RuntimeError:\n"
                "        scores = torch.empty(shape, dtype=q.dtype)\n"
                "    torch.matmul(q, k.transpose(-2, -1), out=scores)\n"
                "    scores.mul_(1 / math.sqrt(q.shape[-1]))\n"
                "    lse = torch.logsumexp(scores, dim=-1)\n"
                "    scores.sub_(lse[..., None]).exp_()\n"
                "    return scores @ values, lse\n",
            ),
        ),
        W.without(tiled_attention=2),
        report=(MEMORY,),
        note="scores written with out= and in place into an input's storage (resize_)",
    ),
    Case(
        "w1_tiled_global_buffer",
        1,
        (
            suffix(
                "tiled_attention",
                "_SCORES = torch.ones(8192 * 8192)  # allocated and touched before any call\n"
                "def tiled_attention(q, k, v, block_size=128):\n"
                "    count = q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2]\n"
                "    scores = _SCORES[:count].view(*q.shape[:-1], k.shape[-2])\n"
                "    torch.matmul(q, k.transpose(-2, -1), out=scores)\n"
                "    scores.mul_(1 / math.sqrt(q.shape[-1]))\n"
                "    lse = torch.logsumexp(scores, dim=-1)\n"
                "    return scores.sub_(lse[..., None]).exp_() @ v, lse\n",
            ),
        ),
        W.without(tiled_attention=2, tiled_attention_backward=2),  # the buffer is held during every measured call
        report=(MEMORY,),
        note="the n x n scores in a global buffer allocated ahead of time",
    ),
    Case(
        "w1_tiled_dispatch_off",
        1,
        (
            suffix(
                "tiled_attention",
                "import contextlib\n"
                "from torch.utils._python_dispatch import _disable_current_modes\n"
                + DENSE_TILED
                + "def tiled_attention(q, k, v, block_size=128):\n"
                "    off = getattr(torch._C, 'DisableTorchFunction', contextlib.nullcontext)\n"
                "    with off(), _disable_current_modes():\n"
                "        return _dense_tiled(q, k, v)\n",
            ),
        ),
        W.without(tiled_attention=2),
        report=(MEMORY,),
        note="torch function and dispatch modes switched off around dense attention",
    ),
    Case(
        "w1_tiled_clear_refs",
        1,
        (
            suffix(
                "tiled_attention",
                "import ctypes, gc\n" + DENSE_TILED + "def tiled_attention(q, k, v, block_size=128):\n"
                "    out, lse = _dense_tiled(q, k, v)\n"
                "    gc.collect()\n"
                "    ctypes.CDLL(None).malloc_trim(0)  # the freed scores go back to the system\n"
                "    try:  # restart the process's high-water mark of resident memory, as the grader does\n"
                "        with open('/proc/self/clear_refs', 'w') as file:\n"
                "            file.write('5')\n"
                "    except OSError:\n"
                "        pass\n"
                "    ballast = torch.ones(q.shape[-2] * 512)  # then a peak that grows like n, under the budget\n"
                "    del ballast\n"
                "    return out, lse\n",
            ),
        ),
        W.without(tiled_attention=2),
        report=(MEMORY,),
        note="dense attention, then the resident high-water mark reset from inside and a linear ballast shown",
    ),
    # 2. delegation: the references are not in the sandbox, fused attention is fenced off
    Case(
        "w1_dense_lcteach",
        2,
        (
            suffix(
                "dense_attention",
                "import sys\n"
                "def dense_attention(q, k, v, mask=None):\n"
                "    sys.setprofile(None)\n"
                "    sys.settrace(None)\n"
                "    import lcteach\n"
                "    return lcteach.dense_attention(q, k, v, mask)\n",
            ),
        ),
        W.without("dense_attention"),
        report=("found: reference: uses lcteach.dense_attention",),
        note="calls lcteach's reference (after switching profile and trace hooks off)",
    ),
    Case(
        "w1_tiled_lcteach_thread",
        2,
        (
            suffix(
                "tiled_attention",
                "import threading\n"
                "def tiled_attention(q, k, v, block_size=128):\n"
                "    box = []\n"
                "    def run():\n"
                "        import lcteach\n"
                "        box.append(lcteach.tiled_attention(q, k, v, block_size))\n"
                "    worker = threading.Thread(target=run)\n"
                "    worker.start()\n"
                "    worker.join()\n"
                "    return box[0] if box else None\n",
            ),
        ),
        W.without("tiled_attention"),
        note="calls lcteach's reference from a thread",
    ),
    Case(
        "w1_chunks_recompiled",
        2,
        (
            suffix(
                "process_in_chunks",
                "import os, types\n"
                "def process_in_chunks(fn, x, chunk_size, overlap):\n"
                "    try:  # a copy of the reference's code object\n"
                "        from lcteach.chunking import ChunkedProcessor\n"
                "        code = ChunkedProcessor.__call__.__code__.replace(co_name='mine')\n"
                "        return types.FunctionType(code, ChunkedProcessor.__call__.__globals__)\n"
                "    except ImportError:\n"
                "        pass\n"
                "    import lcteach  # else the reference's source, recompiled\n"
                "    folder = os.path.join(os.path.dirname(lcteach.__file__), 'chunking')\n"
                "    namespace = {}\n"
                "    for name in sorted(os.listdir(folder)):\n"
                "        with open(os.path.join(folder, name)) as file:\n"
                "            exec(compile(file.read(), 'mine.py', 'exec'), namespace)\n"
                "    return namespace['ChunkedProcessor'](fn, chunk_size, overlap)(x)\n",
            ),
        ),
        W.without("process_in_chunks"),
        note="copies the reference's code object, else recompiles lcteach's source",
    ),
    Case(
        "w1_fit_lcteach_measure",
        2,
        (
            suffix(
                "fit_exponent",
                "import lcteach.measure\n"
                "fit_exponent = lambda ns, values, breaks=0: lcteach.measure.fit_exponent(ns, values, breaks)\n",
            ),
        ),
        W.without("fit_exponent"),
        note="lcteach.measure is in the sandbox (its tools); its fit_exponent, the exercise, is not",
    ),
    Case(
        "w1_dense_sdpa",
        2,
        (
            suffix(
                "dense_attention",
                "import torch.nn.functional as F\n"
                "_honest = dense_attention\n"
                "def dense_attention(q, k, v, mask=None):\n"
                "    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)\n"
                "    return out, _honest(q, k, v, mask)[1]\n",
            ),
        ),
        W.without("dense_attention"),
        report=("found: reference: uses F.scaled_dot_product_attention",),
        note="torch's fused attention (scaled_dot_product_attention) for the output",
    ),
    Case(
        "w1_tiled_flash_aten",
        2,
        (
            suffix(
                "tiled_attention",
                "def tiled_attention(q, k, v, block_size=128):\n"
                "    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)[:2]\n"
                "    return out, lse\n",
            ),
        ),
        W.without("tiled_attention"),
        note="torch's CPU flash attention kernel through torch.ops.aten: O(n) memory, out and lse",
    ),
    Case(
        "w1_tiled_unfenced",
        2,
        (
            suffix(
                "tiled_attention",
                "import gc, importlib, sys\n"
                "def tiled_attention(q, k, v, block_size=128):\n"
                "    kernel = sys.modules.get('lcteach.grading.kernel')\n"
                "    for library in getattr(kernel, '_LIBRARIES', []):  # the fence's registrations, if listed\n"
                "        library._destroy()\n"
                "    for thing in gc.get_objects():  # any registration handle or Library on aten, destroyed\n"
                "        if type(thing).__name__ in ('Library', '_DispatchModule') and getattr(thing, 'ns', 'aten') == 'aten':\n"
                "            getattr(thing, '_destroy', getattr(thing, 'reset', lambda: None))()\n"
                "    importlib.reload(torch.nn.functional)\n"
                "    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)[:2]\n"
                "    return out, lse\n",
            ),
        ),
        W.without("tiled_attention"),
        note="the fence sought in the kernel module and through the garbage collector and destroyed, "
        "torch.nn.functional reloaded, then CPU flash attention",
    ),
    # 3. forged outputs: the graded cells' outputs are the trusted grader's verdict alone
    Case(
        "w1_post_run_cell",
        3,
        (
            suffix(
                "dense_attention",
                "from IPython.display import display\n"
                "def _claim(result):\n"
                "    print('dense_attention (graded run): 6/6 checks passed\\n  score: 3 / 3')\n"
                "    display({'text/plain': '3'}, raw=True)\n"
                "get_ipython().events.register('post_run_cell', _claim)\n"
                "def dense_attention(q, k, v, mask=None):\n" + NONE,
            ),
        ),
        W.without("dense_attention"),
        note="a post_run_cell hook prints full marks after every cell; the function returns nothing",
    ),
    Case(
        "w1_fake_grade_module",
        3,
        (
            suffix(
                "~from lcteach.grading import week1 as grade",
                "class _FullMarks:\n"
                "    def __getattr__(self, part):\n"
                "        def grade_part(fn, seed=None):\n"
                "            print(f'{part} (graded run): all checks passed\\n  score: 4 / 4')\n"
                "            return 4.0\n"
                "        return grade_part\n"
                "grade = _FullMarks()\n",
            ),
        ),
        0,  # nothing is handed to the grader: nothing is graded
        report=("not handed to the grader", "found: tampering: rebinds `grade`"),
        note="`grade` rebound to an object whose parts print full marks",
    ),
    Case(
        "w1_patches_builtins",
        3,
        (
            suffix(
                "fit_exponent",
                "import builtins, math\n"
                "builtins.abs = lambda x: 0.0\n"
                "math.isfinite = lambda x: True\n"
                "def fit_exponent(ns, values):\n"
                "    return 0.0\n",
            ),
        ),
        W.without("fit_exponent"),
        report=("found: patching: changes `builtins.abs`",),
        note="builtins.abs and math.isfinite patched in the kernel, a function that returns 0",
    ),
    # 4. expected values read off the call stack: the grader is another process
    Case(
        "w1_stack_dense",
        4,
        (
            suffix(
                "dense_attention",
                "import gc, inspect\n"
                "def dense_attention(q, k, v, mask=None):\n"
                "    out_shape = (*q.shape[:-1], v.shape[-1])\n"
                "    weights_shape = (*q.shape[:-1], k.shape[-2])\n"
                "    found = {}\n"
                "    candidates = [value for info in inspect.stack() for value in info.frame.f_locals.values()]\n"
                "    for value in candidates + gc.get_objects():\n"
                "        if isinstance(value, torch.Tensor) and all(value is not t for t in (q, k, v)):\n"
                "            if tuple(value.shape) in (out_shape, weights_shape):\n"
                "                found.setdefault(tuple(value.shape), value)\n"
                "    if out_shape in found and weights_shape in found:\n"
                "        return found[out_shape], found[weights_shape]\n" + NONE,
            ),
        ),
        W.without("dense_attention"),
        note="returns tensors of the expected shapes found in the callers' frames or by gc",
    ),
    Case(
        "w1_stack_fit",
        4,
        (
            suffix(
                "fit_exponent",
                "import inspect\n"
                "def fit_exponent(ns, values):\n"
                "    for info in inspect.stack():\n"
                "        for name in ('expected', 'exponent', 'slope', 'p', 'power'):\n"
                "            value = info.frame.f_locals.get(name)\n"
                "            if isinstance(value, (int, float)) and not isinstance(value, bool):\n"
                "                return float(value)\n" + NONE,
            ),
        ),
        W.without("fit_exponent"),
        note="returns an `expected` or `exponent` local of a caller's frame",
    ),
    # 5. the code reading evaded: it is advice, the score is what the functions earn
    Case(
        "w1_exec_encoded",
        5,
        (encoded("dense_attention"), encoded("tiled_attention")),
        W.honest,
        note="two honest solution cells run through exec of their base64 text",
    ),
    Case(
        "w1_eval_forges",
        5,
        (
            suffix(
                "dense_attention",
                "import codecs\n"
                "getattr(__builtins__, 'ex' + 'ec')(codecs.decode('''qrs qrafr_nggragvba(d, x, i, znfx=Abar):\n"
                "    cevag('fpber: 3 / 3')\n    erghea Abar\n''', 'rot13'))\n"
                "_show = getattr(__import__('IPython.display', fromlist=['_']), 'dis' + 'play')\n"
                "_show({'text/plain': '3.0'}, raw=True)\n",
            ),
        ),
        W.without("dense_attention"),
        note="a function defined by exec of a rot13 string found through getattr; prints full marks",
    ),
    Case(
        "w1_magic_writefile",
        5,
        (
            replace(
                "dense_attention",
                "%%writefile /tmp/mine.py\n"
                "import math, torch\n"
                "def dense_attention(q, k, v, mask=None):\n"
                "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
                "    if mask is not None:\n"
                "        scores = scores.masked_fill(~mask, float('-inf'))\n"
                "    weights = torch.softmax(scores - scores.amax(dim=-1, keepdim=True), dim=-1)\n"
                "    return weights @ v, weights\n",
            ),
            add_cell("dense_attention", "%run -i /tmp/mine.py\n"),
        ),
        W.honest,
        note="an honest function written to a file by a cell magic and loaded with %run",
    ),
    Case(
        "w1_honest_magics",
        5,
        (magics,),
        W.honest,
        note="honest: %matplotlib inline among the imports and %%time on the tiled cell",
    ),
    Case(
        "w1_honest_namedtuple",
        5,
        (
            suffix(
                "online_softmax_step",
                "from collections import namedtuple\n"
                "SoftmaxState = namedtuple('SoftmaxState', 'm l acc')\n"
                "_step = online_softmax_step\n"
                "def online_softmax_step(m, l, acc, scores, values):\n"
                "    return SoftmaxState(*_step(m, l, acc, scores, values))  # a tuple, with names\n",
            ),
        ),
        W.honest,
        note="honest: online_softmax_step returns its (m, l, acc) as a namedtuple (scored 0/3 before 3fd0cf1)",
    ),
    # 6. limits hold per submission: forks, memory in children, busy processes next to a neighbour
    Case(
        "aa_cpu_burner",
        6,
        (
            prefix(
                "dense_attention",
                "import os, time\n"
                "_burners = []\n"
                f"for _ in range({BURNERS}):\n"
                "    pid = os.fork()\n"
                "    if pid == 0:\n"
                "        os.setsid()  # a session, so a scheduler group, of its own\n"
                f"        end = time.monotonic() + {BURN_SECONDS}\n"
                "        while time.monotonic() < end:\n"
                "            pass\n"
                "        os._exit(0)\n"
                "    _burners.append(pid)\n"
                "for pid in _burners:\n"
                "    os.waitpid(pid, 0)\n",
            ),
        ),
        W.honest,
        note=f"{BURNERS} busy processes for {BURN_SECONDS} s, each in its own session, while ab_beside_burner is graded",
    ),
    Case(
        "ab_beside_burner",
        6,
        (),
        W.honest,
        not_report=("timed out", "did not start", "still running"),
        note="the full solution, graded at the same time as aa_cpu_burner: keeps every point",
    ),
    Case(
        "w1_fork_bomb",
        6,
        (
            prefix(
                "sliding_window",
                "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(3)\n        os._exit(0)",
            ),
        ),
        W.without("sliding_window"),
        report=("limit: process limit",),
        note="forks until the process limit stops it (the cell fails, so its function is missing)",
    ),
    # 7. scratch space: a bounded tmpfs, removed with the sandbox
    Case(
        "w1_fill_tmp",
        7,
        (
            probe(
                "causal_mask",
                "import os\n"
                "written = 0\n"
                "try:\n"
                "    for i in range(12):\n"
                "        with open(f'/tmp/fill{i}', 'wb') as file:\n"
                "            for _ in range(32):\n"
                "                file.write(b'x' * 2**20)\n"
                "                written += 2**20\n"
                "except OSError as error:\n"
                "    print(error)\n"
                "for i in range(12):\n"
                "    if os.path.exists(f'/tmp/fill{i}'):\n"
                "        os.remove(f'/tmp/fill{i}')\n"
                "if written > 300 * 2**20:\n"
                "    escaped(f'{written >> 20} MiB written to /tmp')\n",
            ),
            canary(W),
        ),
        W.honest,
        report=("limit: disk space limit",),
        note="writes 384 MiB to /tmp: its tmpfs holds 256 MiB",
    ),
    Case(
        "w1_fill_private",
        7,
        (
            probe(
                "causal_mask",
                "import os\n"
                "private = os.path.dirname(os.environ.get('LCTEACH_GRADING_SOCKET', '/nowhere/x'))\n"
                "written = 0\n"
                "try:\n"
                "    for i in range(10):\n"
                "        with open(os.path.join(private, f'fill{i}'), 'wb') as file:\n"
                "            for _ in range(32):\n"
                "                file.write(b'x' * 2**20)\n"
                "                written += 2**20\n"
                "except OSError as error:\n"
                "    print(error)\n"
                "for i in range(10):\n"
                "    if os.path.exists(os.path.join(private, f'fill{i}')):\n"
                "        os.remove(os.path.join(private, f'fill{i}'))\n"
                "if written > 300 * 2**20:\n"
                "    escaped(f'{written >> 20} MiB written to the private folder {private}')\n",
            ),
            canary(W),
        ),
        W.honest,
        note="writes 320 MiB into the folder of LCTEACH_GRADING_SOCKET",
    ),
    # 8. links and fifos in the submission folder are never followed
    Case(
        "w1_links",
        8,
        (
            probe(
                "causal_mask",
                "import os\n"
                "for name in ('gradebook.db', 'source.ipynb', 'shadow', 'secret', 'others', 'pipe'):\n"
                "    if os.path.lexists(name):\n"
                "        escaped(f'{name} reached the kernel')\n",
            ),
            canary(W),
        ),
        W.honest,
        report=(
            "limit: not copied: gradebook.db: a symbolic link to",
            "limit: not copied: source.ipynb: a symbolic link to",
            "limit: not copied: shadow: a symbolic link to /etc/shadow",
            "limit: not copied: secret: a symbolic link to",
            "limit: not copied: others: a symbolic link to",
            "limit: not copied: pipe: a fifo",
        ),
        files=(
            symlink("gradebook.db", "@ROOT@/gradebook.db"),
            symlink("source.ipynb", "@ROOT@/source/@WEEK@/exercises.ipynb"),
            symlink("shadow", "/etc/shadow"),
            symlink("secret", "@ROOT@/.grading_secret"),
            symlink("others", "@ROOT@/submitted"),
            fifo("pipe"),
        ),
        note="links to the gradebook, the source notebook, /etc/shadow, the secret, other submissions; a fifo",
    ),
    Case(
        "w1_notebook_is_link",
        8,
        (),
        0,
        report=("exercises.ipynb: not graded:", "a symbolic link"),
        files=(symlink("exercises.ipynb", "@ROOT@/source/@WEEK@/exercises.ipynb"),),
        note="the graded notebook is a link to the source notebook, solutions and hidden tests included",
    ),
    # 9. escapes and control characters: the batch, the CSV and the feedback survive
    Case(
        "w1_ansi_outputs",
        9,
        (
            suffix(
                "dense_attention",
                "import sys\n"
                "print('\\x1b]8;;http://evil.example/\\x1b\\\\link\\x1b]8;;\\x1b\\\\ \\x1b[38m \\x1b[48;5m \\x9b31m '\n"
                "      '\\x1bPdcs\\x1b\\\\ \\x1b]0;title\\x07 \\x00\\x07\\x08\\x7f done')\n"
                "try:\n"
                "    sys.stdout.write('lone \\udcff surrogate\\n')\n"
                "except UnicodeError:\n"
                "    pass\n",
            ),
            add_cell("test_dense_attention", "raise ValueError('\\x1b[38m\\x1b]0;evil\\x07 \\x1b[2J cleared')\n"),
        ),
        W.honest,
        feedback=("done",),
        note="odd escapes (OSC 8, bare SGR 38, DCS, C1 CSI), NUL and a lone surrogate in outputs and a traceback",
    ),
    Case(
        "w1_ansi_answer",
        9,
        (replace("written_chunk_borders", "An answer with \x1b[31mescapes\x1b[0m, \x00 NUL and \x07 bell."),),
        W.honest,
        feedback=("An answer with",),
        note="escapes, NUL and BEL in the written answer",
    ),
    # 10. HTML and scripts: sanitised in the feedback
    Case(
        "w1_html_answer",
        10,
        (
            replace(
                "written_chunk_borders",
                f"<script>alert('{MARK}')</script> my answer <img src=x onerror=alert(1) title={MARK}> "
                f"[click](javascript:alert('{MARK}')) <iframe src='javascript:alert(1)'></iframe>",
            ),
        ),
        W.honest,
        feedback=("my answer",),
        note="a written answer holding a script, an event handler, javascript: links and an iframe",
    ),
    # 11. hidden inputs never reach the feedback
    Case(
        "w1_prints_inputs",
        11,
        (
            suffix(
                "process_in_chunks",
                "def process_in_chunks(fn, x, chunk_size, overlap):\n"
                f"    print({LEAK_CODE}, x.sum().item(), x.flatten()[:6].tolist())\n"
                f"    raise RuntimeError({LEAK_CODE} + f' {{x.sum().item()}} {{x.flatten()[:3].tolist()}}')\n",
            ),
        ),
        W.without("process_in_chunks"),
        note="prints its hidden inputs while graded, and raises them in an error message",
    ),
    Case(
        "w1_stash_inputs",
        11,
        (
            suffix(
                "dense_attention",
                "_honest, _seen = dense_attention, []\n"
                "def dense_attention(q, k, v, mask=None):\n"
                "    _seen.append(q.flatten()[:3].tolist())\n"
                "    return _honest(q, k, v, mask)\n",
            ),
            add_cell("test_dense_attention", f"print({LEAK_CODE}, _seen)\n"),
        ),
        W.honest,
        note="keeps its hidden inputs and prints them in a cell after the graded one",
    ),
]

CASES = selected(CASES)

HONEST_VARIANT = (
    replace(
        "dense_attention",
        "def dense_attention(q, k, v, mask=None):\n"
        "    scores = torch.einsum('bhqd,bhkd->bhqk', q, k) * q.shape[-1] ** -0.5\n"
        "    if mask is not None:\n"
        "        scores = torch.where(mask, scores, torch.tensor(float('-inf'), dtype=scores.dtype))\n"
        "    weights = torch.softmax(scores - scores.amax(-1, keepdim=True), dim=-1)\n"
        "    return torch.einsum('bhqk,bhkd->bhqd', weights, v), weights\n",
    ),
    replace("causal_mask", "def causal_mask(b, h, q_idx, kv_idx):\n    return q_idx >= kv_idx\n"),
    replace(
        "online_softmax_step",
        "from dataclasses import dataclass\n\n"
        "@dataclass\n"
        "class State:\n"
        "    m: torch.Tensor\n"
        "    l: torch.Tensor\n"
        "    acc: torch.Tensor\n\n"
        "    def fold(self, scores, values):\n"
        "        m = torch.maximum(self.m, scores.amax(dim=-1))\n"
        "        base = torch.where(torch.isinf(m) & (m < 0), torch.zeros_like(m), m)\n"
        "        p = torch.exp(scores - base[..., None])\n"
        "        rescale = torch.exp(self.m - base)\n"
        "        return State(m, self.l * rescale + p.sum(-1), self.acc * rescale[..., None] + p @ values)\n\n"
        "def online_softmax_step(m, l, acc, scores, values):\n"
        "    state = State(m, l, acc).fold(scores, values)\n"
        "    print(state.__class__.__name__, 'folded')  # a dataclass repr and its code objects, used honestly\n"
        "    return state.m, state.l, state.acc\n",
    ),
    replace(
        "fit_exponent",
        "def fit_exponent(ns, values, breaks=0):\n"
        "    x, y = np.log(np.asarray(ns, dtype=float)), np.log(np.asarray(values, dtype=float))\n"
        "    if breaks not in (0, 1) or (breaks == 1 and len(x) < 6):\n"
        "        raise ValueError('breaks=1 needs 6 points; breaks is 0 or 1')\n"
        "    if breaks == 0:\n"
        "        return float(np.polyfit(x, y, 1)[0])\n"
        "    def cost(k):\n"
        "        return sum(np.polyfit(x[p], y[p], 1, full=True)[1].sum() for p in (slice(None, k), slice(k, None)))\n"
        "    k = min(range(3, len(x) - 2), key=cost)\n"
        "    return float(np.polyfit(x[k:], y[k:], 1)[0])\n",
    ),
)


# shorter limits keep the batch quick; a correct notebook's cells take a few seconds each
(
    corpus,
    test_hostile_submission_scores_what_it_earns,
    test_honest_neighbours_keep_every_point,
    test_the_batch_survives,
) = corpus_tests(W, CASES, HONEST_VARIANT, config="c.Execute.timeout = 90\nc.SandboxedKernelManager.call_seconds = 30")
