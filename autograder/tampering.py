"""Reading a submission's code for tricks: an advisory report to the instructor, never a score.

The grade does not depend on anything the student's process says: the trusted grader calls
the student's functions through the channel and judges their return values in its own
process, and the references are not in the sandbox (``lcteach.grading.policy``). The code
reading (of the student's cells; it never runs them) still tells the instructor what an
honest solution never needs, since it often explains a surprising result:

- *tampering* with the grading side: assigning to or deleting attributes of
  ``lcteach.grading``, ``sys`` or IPython, rebinding the ``grade`` module, profile or trace
  hooks, writing outputs by hand (``sys.displayhook``, ``publish_display_data``,
  ``_repr_mimebundle_``), or importing modules by a computed name;
- *patching* torch, numpy, math or builtins;
- *reference use*: importing a graded reference from lcteach or torch's fused attention (in
  the sandbox they are missing, so such a function fails its checks there).

Cells that cannot be parsed are skipped (they fail in the kernel too).
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass

from IPython.core.inputtransformer2 import TransformerManager

from lcteach.grading.policy import PRESENTATION_TOOLS, STUDENT_TOOLS

# lcteach modules a solution may use: tools, not answers.
GRADER_MODULES = ("lcteach.grading", "sys", "IPython", "ipykernel")
PATCHABLE_MODULES = (
    "torch",
    "numpy",
    "math",
    "random",
    "os",
    "time",
    "signal",
    "threading",
    "builtins",
    "__builtins__",
)
FORGING_NAMES = {
    "setprofile",
    "settrace",
    "displayhook",
    "publish_display_data",
    "_repr_mimebundle_",
    "display_pub",
    "excepthook",
}
REFERENCE_NAMES = {"scaled_dot_product_attention", "flex_attention"}


@dataclass(frozen=True)
class Finding:
    kind: str  # "tampering", "patching" or "reference"
    cell: str  # the cell's id
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.what} (cell {self.cell}, line {self.line})"


def inspect_cells(cells: list[tuple[str, str]]) -> list[Finding]:
    """Findings in the student's code cells, given as (cell id, source) in notebook order."""
    modules: dict[str, str] = {}  # local name -> module it is bound to, from every cell's imports
    trees = []
    for cell_id, source in cells:
        try:
            tree = ast.parse(TransformerManager().transform_cell(source))
        except (SyntaxError, ValueError):
            continue
        trees.append((cell_id, tree))
        for node in ast.walk(tree):
            modules.update(_imported(node))
    findings = []
    for cell_id, tree in trees:
        for node in ast.walk(tree):
            findings += [
                Finding(kind, cell_id, getattr(node, "lineno", 0), what) for kind, what in _judge_node(node, modules)
            ]
    return findings


def _imported(node: ast.AST) -> dict[str, str]:
    if isinstance(node, ast.Import):
        return {(a.asname or a.name.split(".")[0]): (a.name if a.asname else a.name.split(".")[0]) for a in node.names}
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return {(a.asname or a.name): f"{node.module}.{a.name}" for a in node.names}
    return {}


def _root(node: ast.AST) -> str | None:
    """The name an attribute chain starts from: ``torch`` for ``torch.nn.functional.softmax``."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _module_of(name: str | None, modules: dict[str, str]) -> str:
    if name is None:
        return ""
    if name == "grade":
        return modules.get(name, "lcteach.grading")
    return modules.get(name, name if name in ("__builtins__",) else "")


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _judge_node(node: ast.AST, modules: dict[str, str]) -> list[tuple[str, str]]:
    found = []
    targets = []
    if isinstance(node, (ast.Assign, ast.Delete)):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    for target in targets:
        for part in ast.walk(target):
            if (
                isinstance(part, ast.Name)
                and isinstance(part.ctx, (ast.Store, ast.Del))
                and _in(modules.get(part.id, ""), ("lcteach.grading",))
                or isinstance(part, ast.Name)
                and part.id == "grade"
                and isinstance(part.ctx, ast.Store)
            ):
                found.append(("tampering", f"rebinds `{part.id}`, the grader"))
            if isinstance(part, (ast.Attribute, ast.Subscript)) and isinstance(part.ctx, (ast.Store, ast.Del)):
                found += _attribute_change(ast.unparse(part), _module_of(_root(part), modules))
    if isinstance(node, ast.Call):
        called = ast.unparse(node.func)
        if called.rsplit(".", 1)[-1] in ("setattr", "delattr") and node.args:
            found += _attribute_change(
                f"{called}({ast.unparse(node.args[0])}, ...)", _module_of(_root(node.args[0]), modules)
            )
        if called.rsplit(".", 1)[-1] in ("import_module", "__import__", "reload") and not all(
            isinstance(a, ast.Constant) and not str(a.value).startswith("lcteach") for a in node.args[:1]
        ):
            found.append(("tampering", f"`{called}` loads a module by a computed or lcteach name"))
    used = {ast.Attribute: "attr", ast.Name: "id", ast.FunctionDef: "name", ast.alias: "name"}.get(type(node))
    if used and getattr(node, used) in FORGING_NAMES:
        found.append(
            (
                "tampering",
                f"uses `{getattr(node, used)}`, which can hook into execution or write the cell's result by hand",
            )
        )
    found += _reference_use(node, modules)
    return found


def _attribute_change(target: str, module: str) -> list[tuple[str, str]]:
    if _in(module, GRADER_MODULES):
        return [("tampering", f"changes `{target}` of {module}")]
    if _in(module, PATCHABLE_MODULES):
        return [("patching", f"changes `{target}` of {module}")]
    return []


def _reference_use(node: ast.AST, modules: dict[str, str]) -> list[tuple[str, str]]:
    name = None
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lcteach"):
        name = next((f"{node.module}.{a.name}" for a in node.names if not _allowed(f"{node.module}.{a.name}")), None)
    elif isinstance(node, ast.Attribute) and _module_of(_root(node), modules).startswith("lcteach"):
        full = f"{_module_of(_root(node), modules)}.{ast.unparse(node).split('.', 1)[-1]}"
        name = None if _allowed(full) or isinstance(node.value, ast.Attribute) else full
    elif (
        isinstance(node, (ast.Attribute, ast.Name))
        and getattr(node, "attr", getattr(node, "id", "")) in REFERENCE_NAMES
    ):
        name = ast.unparse(node)
    return [("reference", f"uses {name}")] if name else []


def _allowed(name: str) -> bool:
    tools = (*STUDENT_TOOLS, *PRESENTATION_TOOLS)
    return name.startswith("lcteach.grading") or _in(name, tools) or _in(_defined_in(name), tools)


def _defined_in(name: str) -> str:
    """Where a name that a package re-exports is defined: ``lcteach.measure.format_bytes`` ->
    ``lcteach.measure.units.format_bytes``; the name itself when it is not an lcteach object."""
    module, _, attr = name.rpartition(".")
    try:
        home = getattr(getattr(importlib.import_module(module), attr), "__module__", None)
    except (ImportError, AttributeError, ValueError):
        return name
    return f"{home}.{attr}" if isinstance(home, str) else name
