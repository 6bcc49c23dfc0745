"""Copy a student's files for grading without ever following a link.

Grading runs as root. A symbolic link in a submission (to the gradebook, to a source notebook
with its hidden tests, to /etc/shadow), a hard link, a fifo that blocks the reader or a device
would let a student read, through the grader, what only root may read. So nothing of a
submission is read in place: ``stage_submission`` copies ``submitted/<student>/<week>/`` into
``staged/<student>/<week>/`` of the course root with regular files and folders only, and nbgrader
autogrades that copy (``--CourseDirectory.submitted_directory=staged``).

Every entry is looked at with ``lstat`` and opened relative to its folder's descriptor with
``O_NOFOLLOW`` (``os.open(name, ..., dir_fd=...)``), then compared (device and inode) with what
``lstat`` saw, so an entry swapped for a link while the copy runs is refused too, never followed.
Everything else is refused and reported: symbolic links, files with more than one hard link,
fifos, sockets, devices, entries on another file system, folders nested too deep, and whatever
goes past the bounds on the total size and the number of files.

The same copy serves ``nbgrader collect`` (``SafeExchangeCollect``, named in
``nbgrader_config.py``), and ``SafeExtractor`` unpacks LMS zips for ``nbgrader zip_collect`` with
regular files only: a zip member that is a symbolic link (its Unix mode in the external
attributes) is never created as a link.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.plugins import ExtractorPlugin
from traitlets import Integer

STAGED = "staged"  # the course root's folder of graded copies: staged/<student>/<week>/
SUBMITTED = "submitted"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a fifo swapped in after lstat opens at once instead of blocking the grader.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a fifo",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


@dataclass(frozen=True)
class CopyLimits:
    """Bounds on one copy; what goes past them is refused and reported."""

    max_bytes: int = 100 * 2**20  # all files together
    max_files: int = 1000
    max_depth: int = 8  # folders below the top one


@dataclass
class CopyReport:
    """What a copy wrote, and every entry it refused: (path in the folder, why); "." is the folder."""

    files: int = 0
    bytes: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"{path}: {why}" for path, why in self.refused]

    def summary(self, most: int = 5) -> str:
        """The refused entries in one line: the first ``most`` with what they are."""
        shown = [f"{path} ({why.rsplit(', not ', 1)[0]})" for path, why in self.refused[:most]]
        more = f" and {len(self.refused) - most} more" if len(self.refused) > most else ""
        return f"not copied for grading: {', '.join(shown)}{more}"


def show(name: str) -> str:
    """A file name as it may go into a report: printable as is, else Python's ``ascii()`` of it."""
    return name if name.isprintable() and name.strip() == name and name else ascii(name)


def copy_tree(
    base: Path,
    parts: tuple[str, ...],
    target: Path,
    limits: CopyLimits = CopyLimits(),
    ignore: Callable[[str], bool] = lambda name: False,
) -> CopyReport:
    """Copy the folder ``base/<parts...>`` to ``target`` with regular files and folders only.

    ``base`` is trusted (a folder of the course); each of ``parts`` and everything below them is
    not, and is opened without following links. ``target`` is replaced. Names for which
    ``ignore`` is true are left out silently (checkpoints, say). Never raises for what it finds
    in the source: a source that is not a plain folder yields an empty ``target`` and a report.
    """
    report = CopyReport()
    shutil.rmtree(target, ignore_errors=True)  # rmtree itself never follows links
    try:
        target.mkdir(parents=True)
    except OSError as error:
        report.refused.append((".", f"the grader's copy could not be made ({error.strerror or error}); nothing copied"))
        return report
    shown = "/".join(show(p) for p in parts) or "."
    try:
        source_fd = _open_folder(base, parts)
    except OSError as error:
        report.refused.append((".", f"{shown}: {_why_not_folder(error)}; nothing copied"))
        return report
    target_fd = os.open(target, _DIR_FLAGS)
    try:
        _copy_folder(source_fd, target_fd, "", 0, os.fstat(source_fd).st_dev, limits, ignore, report)
    finally:
        os.close(source_fd)
        os.close(target_fd)
    return report


def staged_folder(root: Path, student: str, week: str) -> Path:
    """``root/staged/<student>/<week>/``: the grader's copy of a submission, the only folder autograded."""
    return Path(root) / STAGED / student / week


def stage_submission(root: Path, student: str, week: str, limits: CopyLimits = CopyLimits()) -> CopyReport:
    """Copy ``root/submitted/<student>/<week>/`` to ``staged_folder(root, student, week)`` (see copy_tree)."""
    return copy_tree(root / SUBMITTED, (student, week), staged_folder(root, student, week), limits)


def unstage_submission(root: Path, student: str, week: str) -> None:
    """Remove a graded copy (the student's folder in staged/ stays: another week may be in it)."""
    shutil.rmtree(staged_folder(root, student, week), ignore_errors=True)


def _open_folder(base: Path, parts: tuple[str, ...]) -> int:
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            if part in ("", ".", "..") or "/" in part:
                raise OSError(errno.EINVAL, "not a plain folder name")
            inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _why_not_folder(error: OSError) -> str:
    if error.errno in (errno.ELOOP, errno.ENOTDIR):
        return "not a folder (a symbolic link, or a file), not followed"
    if error.errno == errno.ENOENT:
        return "no such folder"
    return f"could not be opened ({error.strerror or error})"


def _sorted_entries(fd: int, most: int) -> Iterator[tuple[str, os.stat_result | None]]:
    """The entries of a folder, at most ``most``: notebooks first, then other files, then folders."""
    entries = []
    with os.scandir(fd) as listing:
        names = [entry.name for _, entry in zip(range(most), listing)]
    for name in names:
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            info = None
        is_dir = info is not None and stat.S_ISDIR(info.st_mode)
        entries.append(((is_dir, not name.endswith(".ipynb"), name), name, info))
    for _, name, info in sorted(entries):
        yield name, info


def _copy_folder(
    source_fd: int,
    target_fd: int,
    prefix: str,
    depth: int,
    device: int,
    limits: CopyLimits,
    ignore: Callable[[str], bool],
    report: CopyReport,
) -> None:
    most = 10 * limits.max_files  # a folder of a million files is not listed to the end
    entries = list(_sorted_entries(source_fd, most + 1))
    if len(entries) > most:
        report.refused.append(
            (prefix.rstrip("/") or ".", f"too many entries (more than {most} in a folder), not all listed")
        )
        entries = entries[:most]
    for name, info in entries:
        path = prefix + show(name)
        if ignore(name):
            continue
        if info is None:
            report.refused.append((path, "vanished or unreadable while being copied, not copied"))
            continue
        kind = stat.S_IFMT(info.st_mode)
        if kind in _KINDS:
            detail = ""
            if kind == stat.S_IFLNK:
                try:
                    detail = f" to {show(os.readlink(name, dir_fd=source_fd)[:200])}"
                except OSError:
                    pass
            report.refused.append((path, f"{_KINDS[kind]}{detail}, not {'followed' if detail else 'copied'}"))
        elif info.st_dev != device:
            report.refused.append((path, "on another file system (a mount point), not copied"))
        elif kind == stat.S_IFDIR:
            if depth >= limits.max_depth:
                report.refused.append((path, f"too deep (a folder below {limits.max_depth} levels), not copied"))
                continue
            _copy_subfolder(source_fd, target_fd, name, path, info, depth, device, limits, ignore, report)
        elif kind == stat.S_IFREG:
            _copy_file(source_fd, target_fd, name, path, info, limits, report)
        else:
            report.refused.append((path, f"not a regular file (mode {oct(info.st_mode)}), not copied"))


def _same(info: os.stat_result, opened: os.stat_result) -> bool:
    return (info.st_dev, info.st_ino, stat.S_IFMT(info.st_mode)) == (
        opened.st_dev,
        opened.st_ino,
        stat.S_IFMT(opened.st_mode),
    )


def _copy_subfolder(source_fd, target_fd, name, path, info, depth, device, limits, ignore, report) -> None:
    try:
        inner = os.open(name, _DIR_FLAGS, dir_fd=source_fd)
    except OSError as error:
        report.refused.append((path, _why_not_folder(error)))
        return
    try:
        if not _same(info, os.fstat(inner)):
            report.refused.append((path, "changed while being copied, not followed"))
            return
        os.mkdir(name, 0o755, dir_fd=target_fd)
        inner_target = os.open(name, _DIR_FLAGS, dir_fd=target_fd)
        try:
            _copy_folder(inner, inner_target, path + "/", depth + 1, device, limits, ignore, report)
        finally:
            os.close(inner_target)
    finally:
        os.close(inner)


def _copy_file(source_fd, target_fd, name, path, info, limits, report) -> None:
    if info.st_nlink > 1:
        report.refused.append((path, f"a file with {info.st_nlink} hard links (it may be someone else's), not copied"))
        return
    if report.files >= limits.max_files:
        report.refused.append((path, f"too many files (more than {limits.max_files}), not copied"))
        return
    room = limits.max_bytes - report.bytes
    if info.st_size > room:
        report.refused.append((path, f"too large (the copy would pass {limits.max_bytes} bytes in all), not copied"))
        return
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=source_fd)
    except OSError as error:
        why = "changed into a link while being copied" if error.errno == errno.ELOOP else error.strerror
        report.refused.append((path, f"{why}, not copied"))
        return
    try:
        opened = os.fstat(fd)
        if not _same(info, opened) or not stat.S_ISREG(opened.st_mode) or opened.st_nlink > 1:
            report.refused.append((path, "changed while being copied, not copied"))
            return
        os.set_blocking(fd, True)
        out = os.open(name, _CREATE_FLAGS, 0o644, dir_fd=target_fd)
        written = 0
        try:
            while chunk := os.read(fd, min(_CHUNK, room - written + 1)):
                written += len(chunk)
                if written > room:
                    break
                while chunk:
                    chunk = chunk[os.write(out, chunk) :]
            os.utime(out, ns=(opened.st_atime_ns, opened.st_mtime_ns))
        finally:
            os.close(out)
        if written > room:
            os.unlink(name, dir_fd=target_fd)
            report.refused.append(
                (path, f"too large (it grew past {limits.max_bytes} bytes in all while being copied), not copied")
            )
            return
        report.files += 1
        report.bytes += written
    except OSError as error:
        report.refused.append((path, f"could not be copied ({error.strerror or error})"))
    finally:
        os.close(fd)


# ---------------------------------------------------------------- nbgrader collect (the exchange)


def _ignored(patterns: list[str]) -> Callable[[str], bool]:
    return lambda name: any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


class SafeExchangeCollect(ExchangeCollect):
    """``nbgrader collect`` that copies a student's inbound folder with ``copy_tree``.

    nbgrader's own copy (``shutil.copytree``) follows symbolic links: as root, a link in a
    student's submission to a file only root may read would be copied as that file.
    """

    def do_copy(self, src, dest, log=None):
        src = Path(src)
        limits = CopyLimits(max_bytes=1000 * self.coursedir.max_dir_size)
        report = copy_tree(src.parent, (src.name,), Path(dest), limits, _ignored(list(self.coursedir.ignore)))
        for line in report.lines():
            self.log.warning("not collected: %s/%s", src.name, line)


class SafeExtractor(ExtractorPlugin):
    """``nbgrader zip_collect``'s extractor: regular files only, bounded, no link created.

    Each zip (``.zip``) or tar (``.tar.gz``, ``.tgz``, ``.gz``) archive of the archive folder is
    unpacked into a folder of its name, nested archives into folders of theirs; other regular
    files are copied. Members that are links (symbolic or hard), devices or fifos, names that
    leave the folder, and whatever passes the bounds are refused with a warning.
    """

    max_member_bytes = Integer(100 * 2**20, help="largest file unpacked from an archive").tag(config=True)
    max_total_bytes = Integer(4 * 2**30, help="all files unpacked from the archive folder").tag(config=True)
    max_members = Integer(100_000, help="files unpacked from the archive folder").tag(config=True)
    max_nesting = Integer(3, help="archives within archives").tag(config=True)

    def extract(self, archive_path: str, extracted_path: str) -> None:
        self._budget = [self.max_total_bytes, self.max_members]
        base = Path(archive_path)
        for folder, dirs, files in os.walk(base):  # os.walk does not descend into linked folders
            here = Path(folder)
            into = Path(extracted_path) / here.relative_to(base)
            for name in sorted(dirs):
                if (here / name).is_symlink():
                    self.log.warning("not extracted: %s: a symbolic link", here / name)
            for name in sorted(files):
                path = here / name
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode):
                    self.log.warning("not extracted: %s: not a regular file", path)
                    continue
                into.mkdir(parents=True, exist_ok=True)
                if _archive_kind(path, self.zip_ext):
                    self._unpack(path, into / _archive_stem(name), 0)
                else:
                    with path.open("rb") as source:
                        self._write(into / name, source, f"{path}")

    def _unpack(self, path: Path, into: Path, depth: int) -> None:
        self.log.info("Extracting from: %s", path)
        into.mkdir(parents=True, exist_ok=True)
        nested = []
        for member, opener, why in archive_members(path):
            if why:
                self.log.warning("not extracted: %s:%s: %s", path.name, show(member), why)
                continue
            destination = into / member
            destination.parent.mkdir(parents=True, exist_ok=True)
            with opener() as source:
                if self._write(destination, source, f"{path.name}:{show(member)}") and _archive_kind(
                    destination, self.zip_ext
                ):
                    nested.append(destination)
        for archive in nested:
            if depth + 1 > self.max_nesting:
                self.log.warning("not extracted: %s: archives nested too deep", archive)
                continue
            self._unpack(archive, archive.parent / _archive_stem(archive.name), depth + 1)
            archive.unlink()

    def _write(self, destination: Path, source, label: str) -> bool:
        if self._budget[1] <= 0:
            self.log.warning("not extracted: %s: more than %d files", label, self.max_members)
            return False
        room = min(self.max_member_bytes, self._budget[0])
        try:
            out = os.open(destination, _CREATE_FLAGS, 0o644)
        except OSError as error:
            self.log.warning("not extracted: %s: %s", label, error.strerror)
            return False
        written = 0
        with os.fdopen(out, "wb") as target:
            while chunk := source.read(min(_CHUNK, room - written + 1)):
                written += len(chunk)
                if written > room:
                    break
                target.write(chunk)
        if written > room:
            destination.unlink()
            self.log.warning("not extracted: %s: larger than %d bytes", label, room)
            return False
        self._budget[0] -= written
        self._budget[1] -= 1
        return True


def _archive_kind(path: Path, extensions=(".zip", ".gz")) -> str | None:
    """ "zip" or "tar" for an archive the extractor unpacks, else None."""
    if not any(path.name.endswith(ext) for ext in extensions) and not path.name.endswith(".tgz"):
        return None
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        return "tar" if tarfile.is_tarfile(path) else None
    except OSError:
        return None


def _archive_stem(name: str) -> str:
    for suffix in (".tar.gz", ".tgz", ".zip", ".gz"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _member_name(name: str) -> str | None:
    """The member's path if it stays inside the folder it is unpacked to, else None."""
    if not name or "\\" in name or "\x00" in name or name.startswith("/"):
        return None
    normal = posixpath.normpath(name)
    if normal in (".", "..") or normal.startswith("../") or any(p in ("", "..") for p in normal.split("/")):
        return None
    return normal


def archive_members(path: Path) -> Iterator[tuple[str, Callable, str | None]]:
    """(name, opener, why refused or None) for every file member of a zip or tar archive.

    Folder members are skipped (folders are made as files need them). A member is refused
    when it is a symbolic or hard link, a device or fifo, or its name leaves the folder.
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                mode = info.external_attr >> 16 if info.create_system == 3 else 0
                kind = stat.S_IFMT(mode)
                name = _member_name(info.filename)
                if kind not in (0, stat.S_IFREG):
                    why = f"{_KINDS.get(kind, 'not a regular file')} in the archive, not extracted"
                elif name is None:
                    why = "a name outside the archive's folder, not extracted"
                else:
                    why = None
                yield name or info.filename, (lambda info=info: archive.open(info)), why
        return
    with tarfile.open(path) as archive:
        for member in archive:
            if member.isdir():
                continue
            name = _member_name(member.name)
            if not member.isreg():
                kind = "a symbolic link" if member.issym() else "a hard link" if member.islnk() else "not a file"
                why = f"{kind} in the archive, not extracted"
            elif name is None:
                why = "a name outside the archive's folder, not extracted"
            else:
                why = None
            yield name or member.name, (lambda member=member: archive.extractfile(member)), why


def refused_members(path: Path) -> list[str]:
    """``<member>: <why>`` for each member of the archive at ``path`` that the extractor refuses."""
    try:
        return [f"{show(name)}: {why}" for name, _, why in archive_members(path) if why]
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as error:
        return [f"(the archive): could not be read ({error})"]
