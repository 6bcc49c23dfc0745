"""Graders for the course's exercises: ``from lcteach.grading import week1 as grade``.

Each week module exposes one function per graded part, ``grade.<part>(student_fn, seed=None)``;
``lcteach.grading.core`` holds the engine they share.
"""
