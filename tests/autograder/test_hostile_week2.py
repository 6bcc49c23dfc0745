"""The hostile corpus of Week 2: crafted submissions graded in one batch with honest neighbours.

Each case starts from the full solution and edits it as a student trying a trick would; it
must score what its functions earn and no more (tests/hostile_corpus.py). Part points:
strided 2, random_block_layout 2, longformer 2, bigbird 3 (a block layout built on random_block_layout),
block_sparse_attention 4 (its last check, 2 points, measures CPU time from outside against
masked dense attention), topk_attention 3, minimal_layers 2, select_blocks 3; the written
answer (2) waits for a human. Set LCTEACH_HOSTILE_CASES=name,name to grade a few cases only.
"""

from __future__ import annotations

import os

import pytest
from conftest import needs_sandbox
from hostile_corpus import (
    LEAK_CODE,
    MARK,
    WEEK2,
    Case,
    add_cell,
    canary,
    corpus_tests,
    delete,
    fifo,
    hardlink,
    metadata,
    move_to_top,
    prefix,
    probe,
    regrade,
    remove_file,
    replace,
    retype,
    selected,
    strip_cell_ids,
    suffix,
    symlink,
    top_level,
    truncate_notebook,
    write_file,
    zip_file,
    zip_link,
)

from autograder.cgroups import GroupLimits

pytestmark = [pytest.mark.slow, needs_sandbox]

W = WEEK2
NONE = "    return None\n"
WORK = "block_sparse_attention: the work follows the layout"  # the measured check's name in the report
DENSE_BLOCK_SPARSE = (
    "def _dense_block_sparse(q, k, v, layout, block_size):\n"
    "    n_q, n_k = q.shape[-2], k.shape[-2]\n"
    "    mask = layout.repeat_interleave(block_size, 0).repeat_interleave(block_size, 1)[:n_q, :n_k]\n"
    "    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, float('-inf'))\n"
    "    return torch.softmax(scores, dim=-1).nan_to_num(0.0) @ v\n"
)
LAST_CELL = "~block, blocks, dim = 16, 64, 32"  # the editable cell after the last graded one
PROBE_CELL = "~show(generate_strided(3), 9)"  # an editable cell near the top
BURNER_THREADS, BURN_SECONDS = 24, 30
SUBMISSION_MEMORY = GroupLimits().memory_bytes  # what all of a submission's processes may hold together
CHILDREN = SUBMISSION_MEMORY // 2**29 + 2  # children of 512 MiB each: 1 GiB more than that

CASES = [
    # 1. the measured work evaded inside the student's process: CPU time is read from outside
    Case(
        "w2_bs_dense_masks",
        1,
        (suffix("block_sparse_attention", DENSE_BLOCK_SPARSE + "block_sparse_attention = _dense_block_sparse\n"),),
        W.without(block_sparse_attention=2),
        report=(WORK,),
        note="masked dense attention: right values, dense work",
    ),
    Case(
        "w2_bs_lean_numpy",
        1,
        (
            suffix(
                "block_sparse_attention",
                "import numpy as np\n"
                "_honest_block_sparse = block_sparse_attention  # for the ragged checks\n"
                "def block_sparse_attention(q, k, v, layout, block_size):\n"
                "    qn, kn, vn, ln = (t.numpy() for t in (q, k, v, layout))\n"
                "    n_q, n_k = qn.shape[-2], kn.shape[-2]\n"
                "    if n_q % block_size or n_k % block_size:\n"
                "        return _honest_block_sparse(q, k, v, layout, block_size)\n"
                "    # every one of the n x n scores, computed lean: two matrix products, one exp, in place\n"
                "    s = (qn * np.float32(1 / math.sqrt(qn.shape[-1]))).astype(qn.dtype) @ np.swapaxes(kn, -1, -2)\n"
                "    s -= s.max(-1, keepdims=True)\n"
                "    np.exp(s, out=s)\n"
                "    s.reshape(*s.shape[:-2], n_q // block_size, block_size, n_k // block_size, block_size)[...] *= ln[:, None, :, None]\n"
                "    l = s.sum(-1, keepdims=True)\n"
                "    np.divide(1, l, out=l, where=l > 0)\n"
                "    return torch.from_numpy(np.ascontiguousarray((s @ vn) * l))\n",
            ),
        ),
        W.without(block_sparse_attention=2),
        report=(WORK,),
        note="masked dense attention in numpy, written lean",
    ),
    Case(
        "w2_bs_short_thread",
        1,
        (
            suffix(
                "block_sparse_attention",
                "import threading, time\n"
                + DENSE_BLOCK_SPARSE
                + "def block_sparse_attention(q, k, v, layout, block_size):\n"
                "    box = []\n"
                "    worker = threading.Thread(target=lambda: box.append(_dense_block_sparse(q, k, v, layout, block_size)))\n"
                "    worker.start()\n"
                "    worker.join()\n"
                "    time.sleep(0.1)  # the thread is gone from /proc before the call returns\n"
                "    return box[0]\n",
            ),
        ),
        W.without(block_sparse_attention=2),
        report=(WORK,),
        note="masked dense attention in a thread that ends before the function returns (as root the measuring "
        "process cannot start a thread at all: see w2_honest_threads)",
    ),
    Case(
        "w2_bs_memoized",
        1,
        (
            suffix(
                "block_sparse_attention",
                "import hashlib\n" + DENSE_BLOCK_SPARSE + "_memo = {}\n"
                "def block_sparse_attention(q, k, v, layout, block_size):\n"
                "    data = b''.join(t.contiguous().numpy().tobytes() for t in (q, k, v, layout))\n"
                "    key = hashlib.sha1(data + str(block_size).encode()).hexdigest()\n"
                "    if key not in _memo:  # the same inputs again: the answer is known\n"
                "        _memo[key] = _dense_block_sparse(q, k, v, layout, block_size)\n"
                "    return _memo[key].clone()\n",
            ),
        ),
        W.without(block_sparse_attention=2),
        report=(WORK,),
        note="masked dense attention, memoised on its inputs' bytes",
    ),
    # 2. delegation
    Case(
        "w2_bs_flex",
        2,
        (
            suffix(
                "block_sparse_attention",
                "from torch.nn.attention.flex_attention import create_block_mask, flex_attention\n"
                "def block_sparse_attention(q, k, v, layout, block_size):\n"
                "    def mask_mod(b, h, q_idx, kv_idx):\n"
                "        return layout[q_idx // block_size, kv_idx // block_size]\n"
                "    mask = create_block_mask(mask_mod, None, None, q.shape[-2], k.shape[-2], device='cpu')\n"
                "    return flex_attention(q, k, v, block_mask=mask)\n",
            ),
        ),
        W.without("block_sparse_attention"),
        report=("found: reference: uses flex_attention",),
        note="FlexAttention with a block mask",
    ),
    Case(
        "w2_bs_flex_reloaded",
        2,
        (
            suffix(
                "block_sparse_attention",
                "import importlib\n"
                "import torch.nn.attention.flex_attention as _flex\n"
                "def block_sparse_attention(q, k, v, layout, block_size):\n"
                "    flex = importlib.reload(_flex)  # the module's own flex_attention, as torch defines it\n"
                "    def mask_mod(b, h, q_idx, kv_idx):\n"
                "        return layout[q_idx // block_size, kv_idx // block_size]\n"
                "    mask = flex.create_block_mask(mask_mod, None, None, q.shape[-2], k.shape[-2], device='cpu')\n"
                "    return flex.flex_attention(q, k, v, block_mask=mask)\n",
            ),
        ),
        W.without("block_sparse_attention"),
        note="FlexAttention brought back by reloading its module",
    ),
    Case(
        "w2_topk_lcteach",
        2,
        (
            suffix(
                "topk_attention",
                "def topk_attention(q, k, v, top_k, causal=False, mask_mod=None):\n"
                "    import lcteach\n"
                "    return lcteach.topk_attention(q, k, v, top_k, causal=causal, mask_mod=mask_mod)\n",
            ),
        ),
        W.without("topk_attention"),
        note="calls lcteach's reference",
    ),
    Case(
        "w2_strided_lcteach_thread",
        2,
        (
            suffix(
                "strided",
                "import threading\n"
                "def generate_strided(stride, causal=False):\n"
                "    box = []\n"
                "    def run():\n"
                "        import lcteach\n"
                "        box.append(lcteach.generate_strided(stride, causal=causal))\n"
                "    worker = threading.Thread(target=run)\n"
                "    worker.start()\n"
                "    worker.join()\n"
                "    return box[0] if box else None\n",
            ),
        ),
        W.without("strided"),
        note="calls lcteach's reference from a thread",
    ),
    # 3. forged outputs and grader objects
    Case(
        "w2_display_forged",
        3,
        (
            suffix(
                "strided",
                "import sys\n"
                "from IPython.display import publish_display_data\n"
                "publish_display_data({'text/plain': 'strided (graded run): 4/4 checks passed\\n  score: 2 / 2',\n"
                "                      'application/vnd.lcteach.record+json': {'part': 'strided', 'points': 2}})\n"
                "sys.displayhook = lambda value: print('2.0')\n"
                "def generate_strided(stride, causal=False):\n" + NONE,
            ),
        ),
        W.without("strided"),
        note="displays a record and a verdict claiming full marks, replaces sys.displayhook",
    ),
    Case(
        "w2_patches_grading",
        3,
        (
            suffix(
                "topk_attention",
                "import lcteach.grading.channel as _channel\n"
                "import lcteach.grading.handoff as _handoff\n"
                "import lcteach.grading.results as _results\n"
                "_results.PartResult.points = property(lambda self: self.max_points)\n"
                "_results.PartResult.__repr__ = lambda self: f'{self.max_points:g}'\n"
                "_handoff.HandedOff.__repr__ = lambda self: '3'\n"
                "_original_send = _channel.Server._send_value\n"
                "def _send_value(self, op, value):\n"
                "    print(f'score: 3 / 3 ({op})')\n"
                "    return _original_send(self, op, value)\n"
                "_channel.Server._send_value = _send_value\n"
                "torch.allclose = lambda *args, **kwargs: True\n"
                "torch.equal = lambda *args, **kwargs: True\n"
                "def topk_attention(q, k, v, top_k, causal=False, mask_mod=None):\n" + NONE,
            ),
        ),
        W.without("topk_attention", "minimal_layers"),  # its own minimal_layers calls the patched torch.equal
        bug="not diagnosed, seen once in four full corpus runs: the honest block_sparse_attention of this "
        "submission (graded before its patches run) failed 'equals masked dense attention when n is a multiple "
        "of block_size' in the graded run (12.33 instead of 13) and passed when regraded with the same seed; "
        "12 in-process channel runs with that seed all passed; since then three full corpus runs and one batch "
        "of 16 copies of this submission beside two busy neighbours all scored 16 (the table of a run prints "
        "the verdicts of a submission that does not get its expected score)",
        note="patches lcteach.grading's results, hand-off and channel, and torch.allclose/equal, in the kernel",
    ),
    Case(
        "w2_replaces_grade_part",
        3,
        (
            suffix(
                "random_block_layout",
                "def _full_marks(fn, seed=None):\n"
                "    print('random_block_layout (graded run): 5/5 checks passed\\n  score: 2 / 2')\n"
                "    return 2.0\n"
                "grade.random_block_layout = _full_marks\n"
                "def random_block_layout(q_blocks, kv_blocks, blocks_per_row, seed):\n" + NONE,
            ),
        ),
        # bigbird_layout draws through random_block_layout, which returns None: only the check without
        # random blocks passes
        W.without("random_block_layout", bigbird=2.5),
        report=("not handed to the grader",),
        note="grade.random_block_layout replaced by a function that prints full marks",
    ),
    Case(
        "w2_tensor_subclass",
        3,
        (
            suffix(
                "topk_attention",
                "class Agreeable(torch.Tensor):\n"
                "    def __eq__(self, other):\n"
                "        return True\n"
                "    @classmethod\n"
                "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                "        if func in (torch.allclose, torch.equal):\n"
                "            return True\n"
                "        return super().__torch_function__(func, types, args, kwargs or {})\n"
                "_honest = topk_attention\n"
                "def topk_attention(q, k, v, top_k, causal=False, mask_mod=None):\n"
                "    out, weights = _honest(q, k, v, top_k, causal, mask_mod)\n"
                "    nan = float('nan')\n"
                "    return (out * nan).as_subclass(Agreeable), (weights * nan).as_subclass(Agreeable)\n",
            ),
        ),
        W.without("topk_attention"),
        note="NaN results in a tensor subclass that calls everything equal",
    ),
    Case(
        "w2_always_equal",
        3,
        (
            suffix(
                "block_sparse_attention",
                "class Yes:\n"
                "    __eq__ = lambda self, other: True\n"
                "    __float__ = lambda self: 0.0\n"
                "    shape = property(lambda self: None)\n"
                "    def __repr__(self):\n"
                "        return '4.0 ' * 20_000_000  # a huge repr\n"
                "def block_sparse_attention(q, k, v, layout, block_size):\n"
                "    return Yes()\n"
                "Yes()  # the cell's result: 80 MB of repr\n",
            ),
        ),
        W.without("block_sparse_attention"),
        note="returns an object equal to everything, with an 80 MB repr, also as the cell's result",
    ),
    # 4. expected values read off the call stack
    Case(
        "w2_stack_minimal_layers",
        4,
        (
            suffix(
                "minimal_layers",
                "import inspect\n"
                "def minimal_layers(pattern, n=None, causal=None):\n"
                "    for info in inspect.stack():\n"
                "        for name in ('expected', 'expected_layers', 'reference'):\n"
                "            value = info.frame.f_locals.get(name)\n"
                "            if isinstance(value, int) and not isinstance(value, bool):\n"
                "                return value\n"
                "    return -1\n",
            ),
        ),
        W.without("minimal_layers"),
        note="returns an `expected` local of a caller's frame",
    ),
    # 5. the code reading evaded: the score is what the functions earn
    Case(
        "w2_obfuscated_honest",
        5,
        (
            suffix(
                "strided",
                "globals()['generate_' + 'strided'] = (lambda honest: lambda stride, causal=False: honest(stride, causal))(\n"
                "    generate_strided)\n",
            ),
            suffix("topk_attention", "vars()['topk_' + 'attention'] = (_topk := topk_attention)\n"),
            add_cell("test_topk_attention", "import lcteach.grading.week2 as grade\n"),
        ),
        W.honest,
        note="honest functions rebound through globals(), vars() and a walrus; `grade` imported again under its name",
    ),
    # 6. limits per submission
    Case(
        "aa_thread_burner",
        6,
        (
            prefix(
                "strided",
                "import os, threading, time\n"
                "torch.set_num_threads(1)\n"
                "def _burn():\n"
                "    a = torch.randn(256, 256)\n"
                f"    end = time.monotonic() + {BURN_SECONDS}\n"
                "    while time.monotonic() < end:\n"
                "        a @ a  # torch lets go of the GIL: every thread keeps a core busy\n"
                f"_threads = [threading.Thread(target=_burn) for _ in range({BURNER_THREADS})]\n"
                "if os.environ.get('LCTEACH_GRADING') == 'worker':  # not again in the measuring process\n"
                "    _threads = []\n"
                "for _thread in _threads:\n"
                "    _thread.start()\n"
                "for _thread in _threads:\n"
                "    _thread.join()\n",
            ),
        ),
        W.honest,
        note=f"{BURNER_THREADS} busy threads for {BURN_SECONDS} s while ab_beside_burner is graded",
    ),
    Case(
        "ab_beside_burner",
        6,
        (),
        W.honest,
        not_report=("timed out", "did not start", "still running"),
        note="the full solution, graded at the same time as aa_thread_burner: keeps every point",
    ),
    Case(
        "w2_child_memory",
        6,
        (
            probe(
                PROBE_CELL,
                "import os, time\n"
                "_children = []\n"
                f"for _ in range({CHILDREN}):\n"
                "    r, w = os.pipe()\n"
                "    pid = os.fork()\n"
                "    if pid == 0:\n"
                "        try:\n"
                "            block = bytearray(2**29)\n"
                "            block[::4096] = b'\\x01' * (2**29 // 4096)  # every page touched: 512 MiB resident\n"
                "            os.write(w, b'1')\n"
                "            time.sleep(8)\n"
                "        except BaseException:\n"
                "            os.write(w, b'0')\n"
                "        os._exit(0)\n"
                "    os.close(w)\n"
                "    _children.append((pid, r))\n"
                "touched = [pid for pid, r in _children if os.read(r, 1) == b'1']\n"
                "# alive now, all pages touched: held at the same time (a child killed later wrote its 1 too)\n"
                "held = sum(os.waitpid(pid, os.WNOHANG) == (0, 0) for pid in touched)\n"
                "for pid, _ in _children:\n"
                "    try:\n"
                "        os.waitpid(pid, 0)\n"
                "    except ChildProcessError:\n"
                "        pass\n"
                "print(f'children held {held / 2:g} GiB at once')\n"
                f"if held * 2**29 > {SUBMISSION_MEMORY}:\n"
                "    escaped(f'{held} children held 512 MiB each at once: {held / 2:g} GiB, over the submission limit')\n",
            ),
            canary(W),
        ),
        W.honest,
        note=f"{CHILDREN} forked children touch 512 MiB each at the same time: more than the submission's "
        f"{SUBMISSION_MEMORY >> 30} GiB together",
    ),
    Case(
        "w2_memory_bomb",
        6,
        (prefix("topk_attention", "ballast = torch.ones(2**31, dtype=torch.float32)  # 8 GiB"),),
        W.without("topk_attention"),
        report=("limit: memory limit",),
        note="allocates 8 GiB in a solution cell (the cell fails, so its function is missing)",
    ),
    Case(
        "w2_honest_threads",
        6,
        (
            replace(
                "block_sparse_attention",
                "from concurrent.futures import ThreadPoolExecutor\n\n"
                "def block_sparse_attention(q, k, v, layout, block_size):\n"
                "    n_k = k.shape[-2]\n"
                "    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)\n"
                "    def one_block(qi):  # only the active key blocks of query block qi\n"
                "        key_blocks = layout[qi].nonzero().flatten().tolist()\n"
                "        if key_blocks:\n"
                "            keys = torch.cat([torch.arange(kj * block_size, min((kj + 1) * block_size, n_k)) for kj in key_blocks])\n"
                "            rows = slice(qi * block_size, (qi + 1) * block_size)\n"
                "            scores = q[..., rows, :] @ k[..., keys, :].transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
                "            out[..., rows, :] = torch.softmax(scores, dim=-1) @ v[..., keys, :]\n"
                "    with ThreadPoolExecutor(max_workers=2) as pool:  # query blocks two at a time\n"
                "        list(pool.map(one_block, range(layout.shape[0])))\n"
                "    return out\n",
            ),
        ),
        W.honest,
        note="honest: a block-sparse kernel that runs its query blocks on a pool of two threads",
    ),
    # 7. scratch space
    Case(
        "w2_floods",
        7,
        (
            suffix("strided", "for _ in range(2000):\n    print('x' * 10000)"),
            prefix(
                "random_block_layout",
                "for i in range(8):\n"
                "    try:\n"
                "        with open(f'/tmp/big{i}', 'wb') as f:\n"
                "            for _ in range(100):\n"
                "                f.write(b'x' * 2**20)\n"
                "    except OSError as error:\n"
                "        print(error)",
            ),
        ),
        W.honest,
        report=("output truncated", "limit: file size limit", "limit: disk space limit"),
        note="20 MB of output in one cell, files past the size limit until the scratch space is full",
    ),
    Case(
        "w2_fills_tmp_and_crashes",
        7,
        (
            prefix(
                LAST_CELL,
                "import ctypes\n"
                "with open('/tmp/left-behind', 'wb') as f:\n"
                "    f.write(b'x' * 60 * 2**20)\n"
                "ctypes.string_at(0)  # the kernel dies holding its scratch files",
            ),
        ),
        W.honest,
        report=("the kernel died",),
        note="fills part of /tmp, then crashes the kernel: the scratch space goes with the sandbox",
    ),
    # 8. links and fifos
    Case(
        "w2_notebook_fifo",
        8,
        (),
        0,
        report=("exercises.ipynb: not graded:", "a fifo"),
        files=(fifo("exercises.ipynb"),),
        note="the graded notebook is a fifo (a reader would block)",
    ),
    Case(
        "w2_linked_folders",
        8,
        (
            probe(
                PROBE_CELL,
                "import os\n"
                "for name in ('sources', 'etc', 'book.db', 'data/answers'):\n"
                "    if os.path.lexists(name):\n"
                "        escaped(f'{name} reached the kernel')\n",
            ),
            canary(W),
        ),
        W.honest,
        report=(
            "limit: not copied: sources: a symbolic link to",
            "limit: not copied: etc: a symbolic link to /etc",
            "limit: not copied: book.db: a file with 2 hard links",
            "limit: not copied: data/answers: a symbolic link to",
        ),
        files=(
            symlink("sources", "@ROOT@/source"),
            symlink("etc", "/etc"),
            hardlink("book.db", "@ROOT@/gradebook.db"),
            write_file("data/notes.txt", "notes"),
            symlink("data/answers", "@ROOT@/source/@WEEK@/exercises.ipynb"),
        ),
        note="links to folders (the source notebooks, /etc), a hard link to the gradebook, a link in a subfolder",
    ),
    # 9. escapes and control characters
    Case(
        "w2_ansi_names",
        9,
        (
            suffix(
                "strided",
                "_honest_strided = generate_strided\n"
                "def generate_strided(stride, causal=False):\n"
                "    fn = _honest_strided(stride, causal)\n"
                "    fn.__name__ = 'strided\\x1b[31m\\x1b]0;evil\\x07\\x1b[2J\\x00'\n"
                "    return fn\n"
                "print(generate_strided(2).__name__, '\\x1b[38;5;999m\\x1b[38;2;1m\\x1b[?1049h done')\n",
            ),
            suffix(
                "minimal_layers",
                "_honest_layers = minimal_layers\n"
                "def minimal_layers(pattern, n=None, causal=None):\n"
                "    if n == -12345:\n"
                "        raise ValueError('\\x1b[31m\\x1b]8;;http://evil.example/\\x07bad\\x1b]8;;\\x07')\n"
                "    return _honest_layers(pattern, n, causal)\n",
            ),
        ),
        W.honest,
        feedback=("done",),
        note="control characters and malformed escapes in a mask_mod's __name__, printed and raised",
    ),
    # 10. HTML and scripts
    Case(
        "w2_html_outputs",
        10,
        (
            suffix(
                "strided",
                "from IPython.display import HTML, SVG, Javascript, Markdown, display\n"
                f"display(HTML(\"<script>alert('{MARK}')</script><img src=x onerror=alert('{MARK}')>\"))\n"
                f"display(Javascript(\"alert('{MARK}')\"))\n"
                f"display(SVG(\"<svg xmlns='http://www.w3.org/2000/svg' onload=\\\"alert('{MARK}')\\\"></svg>\"))\n"
                f"display(Markdown(\"[x](javascript:alert('{MARK}')) <img src=x onerror=alert(1)>\"))\n"
                "class Page:\n"
                f"    def _repr_html_(self):\n        return \"<iframe src='javascript:alert(1)'></iframe>{MARK}\"\n"
                "Page()\n",
            ),
            add_cell(
                "test_strided", f"%%html\n<script>alert('{MARK}')</script><a href=\"javascript:alert(1)\">x</a>\n"
            ),
            add_cell("test_strided", f"%%javascript\nalert('{MARK}')\n"),
            replace("written_reach", f"<script>alert('{MARK}')</script> my reach answer <img src=x onerror=alert(1)>"),
        ),
        W.honest,
        feedback=("my reach answer",),
        note="HTML, JavaScript, SVG and Markdown outputs, a _repr_html_ result, %%html and %%javascript cells, a scripted answer",
    ),
    # 11. hidden inputs stay out of the feedback
    Case(
        "w2_prints_layout_inputs",
        11,
        (
            suffix(
                "random_block_layout",
                "_honest_layout = random_block_layout\n"
                "import inspect\n"
                "def random_block_layout(q_blocks, kv_blocks, blocks_per_row, seed, exclude=None):\n"
                "    if any(frame.function == '_answer' for frame in inspect.stack()):  # called by the grader\n"
                f"        print({LEAK_CODE}, q_blocks, kv_blocks, blocks_per_row, seed)\n"
                "    return _honest_layout(q_blocks, kv_blocks, blocks_per_row, seed, exclude)\n",
            ),
        ),
        W.honest,
        note="prints the hidden arguments (the layout's seed among them) while graded",
    ),
    # sandbox escapes: files, network, writes outside the scratch folder
    Case(
        "w2_reads_outside",
        "sandbox",
        (
            probe(
                PROBE_CELL,
                "import glob, os\n"
                "for path in ['@ROOT@/.grading_secret', '@ROOT@/gradebook.db', '@ROOT@/source/@WEEK@/exercises.ipynb',\n"
                "             '@REPO@/solutions/@WEEK@/exercises.py', '@REPO@/lcteach/kernels/block_sparse.py',\n"
                "             '@ROOT@/submitted/full/@WEEK@/exercises.ipynb', '@ROOT@/nbgrader_config.py', '/etc/shadow']:\n"
                "    try:\n"
                "        with open(path, 'rb') as file:\n"
                "            file.read(1)\n"
                "        escaped(f'read {path}')\n"
                "    except OSError:\n"
                "        pass\n"
                "mine = os.path.dirname(os.environ.get('LCTEACH_GRADING_SOCKET', '/nowhere/x'))\n"
                "others = [p for p in glob.glob(os.path.join(os.path.dirname(mine), 'lcteach-*')) if p != mine]\n"
                "if others:\n"
                "    escaped(f'other kernels\\' folders are visible: {others}')\n",
            ),
            canary(W),
        ),
        W.honest,
        note="reads the secret, the gradebook, solutions, references, another submission, /etc/shadow; looks for other kernels",
    ),
    Case(
        "w2_writes_outside",
        "sandbox",
        (
            probe(
                PROBE_CELL,
                "import os\n"
                "for path in ['@ROOT@/gradebook.db', '@ROOT@/feedback/x.html', '@ROOT@/hacked', '@ROOT@/.grading_secret',\n"
                "             '@ROOT@/submitted/full/@WEEK@/exercises.ipynb', '@REPO@/lcteach/hacked.py',\n"
                "             '/usr/hacked']:\n"
                "    try:\n"
                "        with open(path, 'a') as file:\n"
                "            file.write('x')\n"
                "        escaped(f'wrote {path}')\n"
                "    except OSError as error:\n"
                "        print(error)\n"
                "with open('exercises.ipynb', 'a') as file:  # its own scratch copy is writable\n"
                "    file.write(' ')\n",
            ),
            canary(W),
        ),
        W.honest,
        note="writes to the gradebook, feedback, the secret, another submission, the repository, /usr",
    ),
    Case(
        "w2_uses_network",
        "sandbox",
        (
            probe(
                PROBE_CELL,
                "import socket\n"
                "for address in [('1.1.1.1', 80), ('8.8.8.8', 53), ('127.0.0.1', 22)]:\n"
                "    try:\n"
                "        socket.create_connection(address, timeout=3).close()\n"
                "        escaped(f'connected to {address}')\n"
                "    except OSError as error:\n"
                "        print(error)\n",
            ),
            canary(W),
        ),
        W.honest,
        note="connects to the internet and to the host's loopback",
    ),
    # time limits of graded calls and cells
    Case(
        "w2_endless_loop",
        "time",
        (
            suffix(
                "block_sparse_attention",
                "def block_sparse_attention(q, k, v, layout, block_size):\n    while True:\n        pass",
            ),
        ),
        W.without("block_sparse_attention"),
        report=("limit: cell test_block_sparse_attention timed out after 60 s and was interrupted",),
        note="an endless loop in a graded call",
    ),
    Case(
        "w2_sleeps_forever",
        "time",
        (
            suffix(
                "topk_attention",
                "import time\ndef topk_attention(q, k, v, top_k, causal=False, mask_mod=None):\n    time.sleep(10**6)",
            ),
        ),
        W.without("topk_attention"),
        note="sleeps in a graded call",
    ),
    Case(
        "w2_ignores_interrupts",
        "time",
        (
            suffix(
                "bigbird",
                "import signal\n"
                "def bigbird_layout(n_blocks, window_blocks, global_blocks, random_blocks, seed):\n"
                "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "    while True:\n"
                "        pass",
            ),
        ),
        W.only("strided", "random_block_layout", "longformer"),  # the kernel is shut down: nothing after runs
        report=("did not stop when interrupted",),
        note="ignores SIGINT in an endless graded call",
    ),
    # the kernel dies or exits: parts graded before keep their points
    Case(
        "w2_os_exit",
        "kernel",
        (prefix("block_sparse_attention", "import os\nos._exit(1)"),),
        W.only("strided", "random_block_layout", "longformer", "bigbird"),
        report=("the kernel died",),
        note="os._exit in a solution cell",
    ),
    Case(
        "w2_segfault",
        "kernel",
        (prefix("topk_attention", "import ctypes\nctypes.string_at(0)"),),
        W.without("topk_attention", "minimal_layers", "select_blocks"),
        report=("the kernel died",),
        note="a segmentation fault in a solution cell",
    ),
    Case(
        "w2_sys_exit",
        "kernel",
        (prefix("minimal_layers", "import sys\nsys.exit(3)"),),
        W.without("minimal_layers"),
        note="sys.exit in a solution cell (IPython turns it into an error)",
    ),
    # test cells and metadata: restored from the release
    Case(
        "w2_edits_test_cells",
        "cells",
        (
            replace("test_strided", "2.0"),
            delete("test_minimal_layers"),
            move_to_top("test_longformer"),
            move_to_top("test_bigbird"),
            retype("test_random_block_layout", "2"),
            metadata("test_topk_attention", points=100, grade_id="mine"),
            metadata("strided", grade=True, points=50),
            metadata("test_block_sparse_attention", locked=False, solution=True),
        ),
        W.honest,
        note="test cells replaced, deleted, moved, re-typed; points and roles changed in the metadata",
    ),
    Case(
        "w2_fakes_test_and_code",
        "cells",
        (replace("test_strided", "2.0"), replace("strided", "def generate_strided(stride, causal=False):\n" + NONE)),
        W.without("strided"),
        note="a test cell that just says 2.0 above a function that returns nothing",
    ),
    # submission files
    Case(
        "w2_wrong_nbformat",
        "files",
        (top_level(nbformat=5),),
        0,
        report=("not a valid notebook",),
        note="a notebook of nbformat 5",
    ),
    Case(
        "w2_old_nbformat",
        "files",
        (top_level(nbformat_minor=0), strip_cell_ids()),
        W.honest,
        note="nbformat 4.0, no cell ids",
    ),
    Case(
        "w2_extra_files",
        "files",
        (),
        W.honest,
        files=(
            write_file("scratch.ipynb", "{not json"),
            write_file("notes.txt", "hello"),
            write_file("exercises-copy.ipynb", "{}"),
        ),
        note="a broken extra notebook, a copy, a text file",
    ),
    Case(
        "w2_missing",
        "files",
        (),
        0,
        report=("missing from the submission",),
        files=(remove_file("exercises.ipynb"),),
        note="no graded notebook",
    ),
    Case(
        "w2_broken",
        "files",
        (),
        0,
        report=("not a valid notebook",),
        files=(truncate_notebook(),),
        note="the notebook's JSON cut in half",
    ),
    Case(
        "w2_data_folder",
        "files",
        (),
        W.honest,
        report=("limit: not copied: data/", "too many files (more than 1000)"),
        files=tuple(write_file(f"data/sample{i:04d}.txt", f"{i}") for i in range(1100)),
        note="honest, with a data/ folder of 1100 small files",
    ),
    Case(
        "ziplinks",
        "files",
        (),
        W.honest,
        zip_members=(
            zip_link("ziplinks_4711_99013_scratch.ipynb", "@ROOT@/source/@WEEK@/exercises.ipynb"),
            zip_file("../../../escape.ipynb", "{}"),
            zip_file("/tmp/absolute.ipynb", "{}"),
            zip_file("exercises (1).ipynb", "{}"),
            zip_file("doejane_4711_99012_homework.ipynb", "{}"),
        ),
        note="an LMS zip with the notebook, a member that is a link, and members named outside the folder",
    ),
    Case(
        "ziponlylink",
        "files",
        (),
        None,  # its one member is never created, so there is nothing to grade
        zip_members=(zip_link("ziponlylink_4711_99012_exercises.ipynb", "@ROOT@/source/@WEEK@/exercises.ipynb"),),
        zip_notebook=False,
        note="an LMS zip whose notebook is a link to the source notebook",
    ),
]

CASES = selected(CASES)

HONEST_VARIANT = (
    replace(
        "strided",
        "import sys, warnings\n"
        "from tqdm.auto import tqdm\n\n"
        "def generate_strided(stride, causal=False):\n"
        "    warnings.warn('honest but noisy')  # warnings, stderr and progress bars while graded\n"
        "    sys.stderr.write('to stderr\\n')\n"
        "    for _ in tqdm(range(3)):\n"
        "        pass\n"
        "    strides = torch.as_tensor(stride).reshape(-1)  # an int is one stride for every head\n"
        "    if len(strides) == 0 or bool((strides < 1).any()):\n"
        "        raise ValueError(f'a stride below 1 makes no sense: {stride}')\n"
        "    def strided(b, h, q_idx, kv_idx):\n"
        "        keep = torch.remainder(q_idx - kv_idx, strides[h % len(strides)]) == 0\n"
        "        return keep & (q_idx >= kv_idx) if causal else keep\n"
        "    return strided\n",
    ),
    replace(
        "block_sparse_attention",
        "from dataclasses import dataclass\n\n"
        "@dataclass(frozen=True)\n"
        "class Strip:\n"
        "    rows: slice\n"
        "    keys: torch.Tensor\n\n"
        "def block_sparse_attention(q, k, v, layout, block_size):\n"
        "    n_k = k.shape[-2]\n"
        "    out = q.new_zeros(*q.shape[:-1], v.shape[-1])\n"
        "    strips = [\n"
        "        Strip(slice(qi * block_size, (qi + 1) * block_size),\n"
        "              torch.arange(n_k).view(-1)[torch.repeat_interleave(layout[qi], block_size)[:n_k]])\n"
        "        for qi in range(layout.shape[0])\n"
        "    ]\n"
        "    for strip in strips:\n"
        "        if strip.keys.numel():\n"
        "            scores = q[..., strip.rows, :] @ k[..., strip.keys, :].transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
        "            out[..., strip.rows, :] = torch.softmax(scores, dim=-1) @ v[..., strip.keys, :]\n"
        "    return out\n",
    ),
)


# shorter limits keep the batch quick; a correct notebook's cells take a few seconds each
(
    corpus,
    test_hostile_submission_scores_what_it_earns,
    test_honest_neighbours_keep_every_point,
    test_the_batch_survives,
) = corpus_tests(W, CASES, HONEST_VARIANT, config="c.Execute.timeout = 60\nc.SandboxedKernelManager.call_seconds = 20")


def test_lms_members_that_are_links_or_leave_the_folder_are_refused(corpus):
    if "ziplinks" not in corpus.cases:
        pytest.skip("the zip cases are not in this run")
    skipped = "\n".join(corpus.report.skipped_files)
    assert "ziplinks.zip:ziplinks_4711_99013_scratch.ipynb: a symbolic link in the archive" in skipped
    assert "ziponlylink.zip:ziponlylink_4711_99012_exercises.ipynb: a symbolic link in the archive" in skipped
    assert "a name outside the archive's folder" in skipped
    assert "exercises (1).ipynb: not an LMS submission file name" in skipped
    assert "homework.ipynb is not a notebook of" in skipped
    downloaded = corpus.root / "downloaded" / W.name
    assert not [p for p in downloaded.rglob("*") if p.is_symlink()]
    assert not (corpus.root / "escape.ipynb").exists() and not os.path.exists("/tmp/absolute.ipynb")
    assert not (corpus.root / "submitted" / "ziponlylink").exists()


def test_grading_is_deterministic(corpus, tmp_path):
    """Graded again, alone and with one worker, two submissions get the same scores check by check."""
    students = [s for s in ("full", "w2_display_forged") if s in corpus.results]
    for student, result in regrade(corpus, students, tmp_path).items():
        first = corpus.results[student]
        assert (result.score, result.failed_checks) == (first.score, first.failed_checks)
