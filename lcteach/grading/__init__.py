"""Graders for the course's exercises: ``from lcteach.grading import week1 as grade``.

Each week package (``week1/``, ``week2/``) declares its graded parts, ``grade.<part>(fn)``,
with one module of checks per part (``partN_<name>.py``). The engine they share:

- ``session``: the declaration ``Part``, the ``Case`` checks get, running a part's checks;
- ``results``: outcomes, scores and reports; ``expectations``, ``mask_expectations``: the
  comparisons checks make;
- ``local`` (the self-check in a student's notebook, with ``guard``) and ``remote`` (the
  trusted grader, calling student code through ``channel``);
- the student's side of a graded run: ``handoff`` (``grade.<part>(fn)`` in the sandboxed
  kernel), ``kernel`` (the kernel behind its fence), ``worker`` (the measuring process),
  ``probes`` (grader tools that run next to student code);
- ``policy``: what the sandbox holds and student code may use.
"""
