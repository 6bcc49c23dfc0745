"""The student's side of a graded run: ``grade.<part>(fn)`` hands ``fn`` to the trusted grader.

In the autograding kernel (``LCTEACH_GRADING=kernel``) a graded cell's call connects to the
grader's socket (``LCTEACH_GRADING_SOCKET``), says which part it grades, and answers the
grader's calls (``channel.Server``) until the grader is done. Nothing is checked here; the
grader generates the inputs, computes what they should give, and judges in its own process.
In the measuring process (``LCTEACH_GRADING=worker``) the call does nothing.
"""

from __future__ import annotations

import os
import socket


class HandedOff:
    """What ``grade.<part>(fn)`` returns in a graded run: the grade comes from the trusted grader."""

    def __init__(self, part: str, note: str):
        self.part, self.note = part, note

    def __repr__(self) -> str:
        return f"{self.part}: {self.note}"


def grading_mode() -> str | None:
    """ "kernel" in the autograding kernel, "worker" in a measuring process, None in a student's own notebook."""
    return os.environ.get("LCTEACH_GRADING") or None


def hand_off(part: str, student) -> HandedOff:
    """Serve ``student`` to the trusted grader for ``part`` (e.g. "week1.dense_attention")."""
    from lcteach.grading.channel import ChannelError, Server

    if grading_mode() == "worker":
        return HandedOff(part, "not graded in the measuring process")
    path = os.environ.get("LCTEACH_GRADING_SOCKET", "")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        summary = Server(sock).serve({"part": part, "student": student})
    except (OSError, ChannelError) as error:
        return HandedOff(part, f"the grader did not take this call ({error})")
    finally:
        sock.close()
    return HandedOff(part, str(summary.get("note", "handed to the grader")))
