"""Read the exercises' jupytext sources: their solution functions and their graded cells."""

from __future__ import annotations

import types
from pathlib import Path

import jupytext

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"


def nbgrader_cells(path: Path):
    """(cell, its nbgrader metadata) for every cell of a jupytext notebook that has some."""
    notebook = jupytext.read(path)
    return [(cell, cell.metadata["nbgrader"]) for cell in notebook.cells if "nbgrader" in cell.metadata]


def solution_namespace(path: Path) -> types.SimpleNamespace:
    """Execute the notebook's first code cell (imports) and its solution cells; return what they define."""
    notebook = jupytext.read(path)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    namespace: dict = {}
    setup = code[0]
    exec(compile(setup.source, f"{path.name}:setup", "exec"), namespace)
    for cell in code:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            exec(compile(cell.source, f"{path.name}:{meta['grade_id']}", "exec"), namespace)
    return types.SimpleNamespace(**{k: v for k, v in namespace.items() if not k.startswith("__")})
