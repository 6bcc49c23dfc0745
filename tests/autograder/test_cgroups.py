"""One cgroup per submission: the sandbox's whole process tree shares its memory and process limits."""

import os
import subprocess
import sys
import time

import pytest
from conftest import needs_sandbox

from autograder.cgroups import CGROUP_ENV, GroupLimits, SubmissionCgroup
from autograder.sandbox import Limits, sandbox_command

pytestmark = needs_sandbox

# Two children of one sandboxed process, each holding 300 MiB for a moment.
TWO_CHILDREN = """
import os, sys, time
pids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        block = bytearray(300 * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(2)
        os._exit(0)
    pids.append(pid)
print(sorted(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids))
"""


@pytest.fixture
def cgroup(request):
    group = SubmissionCgroup(f"test-{request.node.name[:40]}-{os.getpid()}", GroupLimits(400 * 2**20, 32, 100))
    if not group.paths:
        pytest.skip(group.enforced())
    yield group
    group.remove()


def sandboxed(group, monkeypatch, *command) -> subprocess.Popen:
    monkeypatch.setenv(CGROUP_ENV, os.pathsep.join(map(str, group.paths)))
    prefix = sandbox_command(Limits(memory_bytes=2 * 2**30), 100_000_000 + os.getpid())
    return subprocess.Popen([*prefix, *command], stdout=subprocess.PIPE, text=True)


def test_the_sandbox_starts_inside_the_cgroup_and_its_removal_kills_the_tree(cgroup, monkeypatch):
    process = sandboxed(cgroup, monkeypatch, "/usr/bin/sleep", "30")
    time.sleep(1)
    inside = {int(pid) for path in cgroup.paths for pid in (path / "cgroup.procs").read_text().split()}
    assert process.pid in inside
    cgroup.remove()
    assert process.wait(10) != 0 and not any(path.exists() for path in cgroup.paths)


def test_forked_children_share_one_memory_limit(cgroup, monkeypatch):
    """Each child alone is under every per-process limit; together they pass the submission's 400 MiB."""
    process = sandboxed(cgroup, monkeypatch, sys.executable, "-c", TWO_CHILDREN)
    output, _ = process.communicate(timeout=60)
    assert output.strip() == "[-9, 0]", output  # the kernel OOM-kills one child, the other finishes
    assert cgroup.oom_kills() == 1  # and the report can say so


def test_the_report_says_which_limits_hold():
    line = SubmissionCgroup.probe()
    assert line.startswith(("cgroup v1 per submission", "cgroup v2 per submission", "no cgroup could be made"))
