"""Run commands as an ordinary user: the tests of what students and instructors do without root.

Students and most instructors are not root, and our machines always are, so a test that runs
a command the usual way proves nothing about them. ``ordinary_user()`` gives an ``Account``:

- as root: the account ``lcteach-user`` (created once with ``useradd``, no sudo, no extra
  groups; created again by nothing), with a virtual environment it can run, built from the
  system's Python (``/usr/bin/python3``; the interpreter of this run may live where other users
  cannot read, as /root/.pyenv does here) with the project's dependencies from pyproject.toml,
  installed by pip the way pip is configured on the machine (a local wheel cache, say). The
  environment is built once per pyproject.toml and kept in /var/tmp
  (``lcteach-user-venv-<hash>``) for later sessions; building it takes a few minutes.
- as any other user: that user, and this run's interpreter; nothing is created.

``run_as_user(command, cwd, env, timeout)`` runs a command as the account with a clean
environment (PATH starting with the account's environment, HOME, LANG, OMP_WAIT_POLICY) plus
``env``; ``checkout(target)`` copies the repository's files (as git lists them) into a folder the
account owns, as a student's own clone would be. Tests that need root to create the account
and find no ``useradd`` are skipped with the reason.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
USER = "lcteach-user"
SYSTEM_PYTHON = Path("/usr/bin/python3")
VENV_CACHE = Path("/var/tmp")


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: Path
    python: Path  # an interpreter with the project's dependencies that the account can run
    switched: bool  # True: commands run as another account than this process (we are root)
    venv_seconds: float = 0.0  # time spent building the account's environment in this session (0: cached)

    @property
    def bin(self) -> Path:
        return self.python.parent

    def environment(self, env: dict[str, str] | None = None) -> dict[str, str]:
        base = {
            "PATH": os.pathsep.join([str(self.bin), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "LANG": "C.UTF-8",
            "OMP_WAIT_POLICY": "PASSIVE",
        }
        return base | (env or {})

    def run(
        self, command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        """Run ``command`` as the account; at the timeout kill it with its process group."""
        switch = {"user": self.uid, "group": self.gid, "extra_groups": []} if self.switched else {}
        process = subprocess.Popen(
            [str(part) for part in command],
            cwd=cwd,
            env=self.environment(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            **switch,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            raise AssertionError(f"{command} ran past {timeout} s as {self.name}:\n{output[-4000:]}") from None
        return subprocess.CompletedProcess(command, process.returncode, output)

    def own(self, path: Path) -> Path:
        """Give ``path`` and everything under it to the account (nothing to do when not switched)."""
        if self.switched:
            for folder, _, files in os.walk(path):
                os.lchown(folder, self.uid, self.gid)
                for name in files:
                    os.lchown(os.path.join(folder, name), self.uid, self.gid)
        return path

    def workspace(self, prefix: str = "work") -> Path:
        """A new empty folder that the account owns and can reach: in its home when switched (the
        test's own temporary folders are root's alone), else a temporary folder. Remove it when done."""
        if not self.switched:
            return Path(tempfile.mkdtemp(prefix=f"lcteach-{prefix}-"))
        base = self.home / "lcteach-tests"
        base.mkdir(exist_ok=True)
        return self.own(Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.own(base))))

    def checkout(self, target: Path) -> Path:
        """Copy the repository's files (tracked and untracked but not ignored) into ``target`` (a
        folder the account owns, see workspace), owned by the account."""
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
        ).stdout.decode()
        for name in filter(None, listed.split("\0")):
            source = REPO / name
            if not source.is_file() or source.is_symlink():
                continue  # deleted in the work tree, or a link: not part of a plain clone's files
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
        return self.own(target)


def _requirements() -> list[str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


def _venv_path() -> Path:
    # pyproject.toml's dependencies and the interpreter they are installed for
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + os.path.realpath(SYSTEM_PYTHON).encode())
    return VENV_CACHE / f"{USER}-venv-{key.hexdigest()[:12]}"


def _create_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or next(
        (p for p in ("/usr/sbin/useradd", "/sbin/useradd") if Path(p).exists()), None
    )
    if useradd is None:
        pytest.skip(f"running as root and `useradd` is missing: cannot create the ordinary account {USER}")
    created = subprocess.run(
        [useradd, "--create-home", "--user-group", "--shell", "/bin/sh", "--comment", "LCTeach tests", USER],
        capture_output=True,
        text=True,
    )
    if created.returncode not in (0, 9):  # 9: it exists (another worker made it first)
        pytest.skip(f"`useradd {USER}` failed: {created.stderr.strip()}")
    return pwd.getpwnam(USER)


def _build_venv(account: Account, path: Path) -> float:
    """Build the account's environment at ``path`` unless a complete one is there; return seconds spent."""
    done = path / ".complete"
    with open(VENV_CACHE / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest workers share the cache: one builds, the others wait
        if done.is_file():
            return 0.0
        if not SYSTEM_PYTHON.is_file():
            pytest.skip(f"{SYSTEM_PYTHON} is missing: no Python that {USER} can run")
        start = time.monotonic()
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(mode=0o755)
        account.own(path)
        pip_settings = {key: value for key, value in os.environ.items() if key.startswith("PIP_")}
        steps = [
            [str(SYSTEM_PYTHON), "-m", "venv", str(path)],
            [str(path / "bin" / "python"), "-m", "pip", "install", "--no-input", "--quiet", *_requirements()],
        ]
        for step in steps:
            result = account.run(step, cwd=path, env=pip_settings, timeout=1800)
            if result.returncode != 0:
                if step is steps[0] and "ensurepip" in result.stdout:
                    pytest.skip(f"{SYSTEM_PYTHON} has no venv module (apt-get install python3-venv)")
                raise AssertionError(f"building {USER}'s environment failed at {step[:4]}:\n{result.stdout[-4000:]}")
        done.write_text(f"built in {time.monotonic() - start:.0f} s\n")
        return time.monotonic() - start


@cache
def ordinary_user() -> Account:
    """The ordinary account that tests run commands as (see the module docstring); made once."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.getuid())
        return Account(me.pw_name, me.pw_uid, me.pw_gid, Path(me.pw_dir), Path(sys.executable), switched=False)
    entry = _create_account()
    path = _venv_path()
    account = Account(USER, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), path / "bin" / "python", switched=True)
    seconds = _build_venv(account, path)
    return Account(**{**account.__dict__, "venv_seconds": seconds})


def run_as_user(
    command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``command`` in ``cwd`` as the ordinary account, with a clean environment plus ``env``."""
    return ordinary_user().run(command, cwd, env, timeout)


@pytest.fixture(scope="session")
def ordinary_account() -> Account:
    """``ordinary_user()`` as a fixture: ``from unprivileged import ordinary_account`` in a test module."""
    return ordinary_user()
