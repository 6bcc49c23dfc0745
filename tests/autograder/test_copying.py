"""The grader's copy of a submission (autograder/copying.py): regular files and folders only, no link followed."""

import io
import os
import socket
import stat
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from autograder import copying
from autograder.copying import (
    CopyLimits,
    SafeExchangeCollect,
    SafeExtractor,
    copy_tree,
    refused_members,
    stage_submission,
)


def files_under(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` by relative path: 'dir', 'link' or the file's text."""
    found = {}
    for path in sorted(folder.rglob("*")):
        relative = str(path.relative_to(folder))
        found[relative] = "link" if path.is_symlink() else "dir" if path.is_dir() else path.read_text()
    return found


@pytest.fixture
def course(tmp_path):
    """A course root with a secret gradebook and source, and a submission full of tricks."""
    root = tmp_path / "root"
    (root / "source" / "week").mkdir(parents=True)
    (root / "gradebook.db").write_text("SECRET gradebook")
    (root / "source" / "week" / "exercises.ipynb").write_text("SECRET hidden tests")
    folder = root / "submitted" / "alice" / "week"
    (folder / "data" / "deeper").mkdir(parents=True)
    (folder / "exercises.ipynb").write_text("my notebook")
    (folder / "timestamp.txt").write_text("2026-01-01 10:00:00")
    (folder / "data" / "deeper" / "notes.txt").write_text("notes")
    (folder / "gradebook.db").symlink_to(root / "gradebook.db")
    (folder / "source.ipynb").symlink_to(root / "source" / "week" / "exercises.ipynb")
    (folder / "shadow").symlink_to("/etc/shadow")
    (folder / "sources").symlink_to(root / "source")  # a linked folder
    (folder / "data" / "up").symlink_to("../../../..")
    os.mkfifo(folder / "pipe")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "sock"))
    listener.close()
    (tmp_path / "elsewhere.txt").write_text("SECRET of someone else")
    os.link(tmp_path / "elsewhere.txt", folder / "hardlink.txt")
    return root


def test_the_copy_holds_regular_files_only_and_reports_every_refusal(course):
    report = stage_submission(course, "alice", "week")
    staged = course / "staged" / "alice" / "week"
    assert files_under(staged) == {
        "data": "dir",
        "data/deeper": "dir",
        "data/deeper/notes.txt": "notes",
        "exercises.ipynb": "my notebook",
        "timestamp.txt": "2026-01-01 10:00:00",
    }
    assert (report.files, report.bytes) == (3, len("my notebook") + len("2026-01-01 10:00:00") + len("notes"))
    why = dict(report.refused)
    assert why["shadow"] == "a symbolic link to /etc/shadow, not followed"
    assert why["gradebook.db"].startswith("a symbolic link to ") and why["sources"].startswith("a symbolic link")
    assert why["source.ipynb"].startswith("a symbolic link") and why["data/up"].startswith("a symbolic link")
    assert why["pipe"] == "a fifo, not copied" and why["sock"] == "a socket, not copied"
    assert why["hardlink.txt"].startswith("a file with 2 hard links")
    assert set(why) == {"shadow", "gradebook.db", "sources", "source.ipynb", "data/up", "pipe", "sock", "hardlink.txt"}
    assert "shadow (a symbolic link to /etc/shadow)" in report.summary(most=10)
    assert "SECRET" not in "".join(p.read_text() for p in staged.rglob("*") if p.is_file())


def test_a_linked_submission_folder_is_not_followed(course, tmp_path):
    (course / "submitted" / "mallory").mkdir()
    (course / "submitted" / "mallory" / "week").symlink_to(course / "source" / "week")
    report = stage_submission(course, "mallory", "week")
    assert report.files == 0 and not any((course / "staged" / "mallory" / "week").iterdir())
    assert report.refused == [
        (".", "mallory/week: not a folder (a symbolic link, or a file), not followed; nothing copied")
    ]
    (course / "submitted" / "eve").symlink_to(course / "submitted" / "alice")  # a linked student folder
    assert stage_submission(course, "eve", "week").refused[0][0] == "."


def test_the_copy_is_bounded_in_size_files_and_depth(tmp_path):
    source = tmp_path / "sub"
    (source / "a" / "b" / "c").mkdir(parents=True)
    (source / "exercises.ipynb").write_text("x" * 100)
    (source / "big.bin").write_bytes(b"y" * 1000)
    for number in range(5):
        (source / f"f{number}.txt").write_text("z")
    (source / "a" / "b" / "c" / "deep.txt").write_text("deep")
    report = copy_tree(tmp_path, ("sub",), tmp_path / "out", CopyLimits(max_bytes=500, max_files=4, max_depth=2))
    copied = files_under(tmp_path / "out")
    assert copied["exercises.ipynb"] == "x" * 100  # notebooks are copied first: junk cannot crowd them out
    assert "big.bin" not in copied and "a/b/c" not in copied
    assert sum(1 for v in copied.values() if v != "dir") == 4
    why = dict(report.refused)
    assert why["big.bin"].startswith("too large") and why["a/b/c"].startswith("too deep")
    assert sum(w.startswith("too many files") for w in why.values()) == 2
    crowded = copy_tree(tmp_path, ("sub",), tmp_path / "out", CopyLimits(max_files=0))  # 10 x 0 entries listed
    assert crowded.refused == [(".", "too many entries (more than 0 in a folder), not all listed")]


def test_an_entry_swapped_for_a_link_during_the_copy_is_not_followed(tmp_path, monkeypatch):
    """lstat sees a regular file; by the time it is opened it is a link to a secret: refused."""
    (tmp_path / "secret.txt").write_text("SECRET")
    source = tmp_path / "sub"
    source.mkdir()
    (source / "answer.txt").write_text("mine")
    (source / "folder").mkdir()
    real_entries = copying._sorted_entries

    def swap_after_lstat(fd, most):
        for name, info in list(real_entries(fd, most)):
            path = source / name
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
            path.symlink_to(tmp_path / ("secret.txt" if name == "answer.txt" else ""))
            yield name, info

    monkeypatch.setattr(copying, "_sorted_entries", swap_after_lstat)
    report = copy_tree(tmp_path, ("sub",), tmp_path / "out")
    assert files_under(tmp_path / "out") == {}
    assert dict(report.refused) == {
        "answer.txt": "changed into a link while being copied, not copied",
        "folder": "not a folder (a symbolic link, or a file), not followed",
    }


def zip_with_a_link(path: Path, name: str, target: str) -> None:
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("doejane_4711_99012_exercises.ipynb", "honest notebook")
        link = zipfile.ZipInfo(name)
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(link, target)
        bundle.writestr("../escape.ipynb", "outside")


def test_zip_collect_never_creates_a_link_from_a_zip_member(tmp_path):
    archive, extracted = tmp_path / "archive", tmp_path / "extracted"
    archive.mkdir()
    extracted.mkdir()
    zip_with_a_link(archive / "submissions.zip", "roerich_4712_99013_exercises.ipynb", "/etc/shadow")
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as bundle:
        link = tarfile.TarInfo("mallory_4713_99014_exercises.ipynb")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        bundle.addfile(link)
    (archive / "more.tar.gz").write_bytes(inner.getvalue())
    (archive / "linked.ipynb").symlink_to("/etc/shadow")

    SafeExtractor().extract(str(archive), str(extracted))
    assert files_under(extracted) == {
        "more": "dir",
        "submissions": "dir",
        "submissions/doejane_4711_99012_exercises.ipynb": "honest notebook",
    }
    assert not (tmp_path / "escape.ipynb").exists()
    assert refused_members(archive / "submissions.zip") == [
        "roerich_4712_99013_exercises.ipynb: a symbolic link in the archive, not extracted",
        "../escape.ipynb: a name outside the archive's folder, not extracted",
    ]
    assert refused_members(archive / "more.tar.gz") == [
        "mallory_4713_99014_exercises.ipynb: a symbolic link in the archive, not extracted"
    ]


def test_nbgrader_collect_copies_an_exchange_submission_without_following_links(tmp_path):
    inbound = tmp_path / "inbound" / "bob+week+2026-01-01 10:00:00.000000 UTC"
    inbound.mkdir(parents=True)
    (inbound / "exercises.ipynb").write_text("bob's notebook")
    (inbound / "stolen.ipynb").symlink_to("/etc/shadow")
    (inbound / ".ipynb_checkpoints").mkdir()
    warnings = []
    collector = SimpleNamespace(
        coursedir=SimpleNamespace(max_dir_size=1000, ignore=[".ipynb_checkpoints"]),
        log=SimpleNamespace(warning=lambda *args: warnings.append(args[0] % args[1:])),
    )
    SafeExchangeCollect.do_copy(collector, str(inbound), str(tmp_path / "submitted" / "bob" / "week"))
    assert files_under(tmp_path / "submitted" / "bob" / "week") == {"exercises.ipynb": "bob's notebook"}
    assert warnings == [f"not collected: {inbound.name}/stolen.ipynb: a symbolic link to /etc/shadow, not followed"]
