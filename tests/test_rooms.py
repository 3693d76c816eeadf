"""The rooms of design.md as an import contract, checked over the sources (an AST walk).

A change that makes a package import upward (the store importing the registry, the
evaluators opening the store, anything importing the CLI) fails here, with the offending
file and line named. Imports under ``if TYPE_CHECKING:`` are ignored; imports inside
functions count as arrows too (they are still dependencies), and module-level imports of
torch are checked separately for the rooms that must stay light.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ssmboard"
COMMON = {"errors", "config", "version", "extras"}  # leaf modules any room may use

# room -> the rooms it may import (besides itself and COMMON)
ALLOWED: dict[str, set[str]] = {
    "db": set(),
    "registry": {"db", "variants.backends", "jobs.queue"},  # the torch-free backend catalogue; enqueueing
    "variants": set(),
    # registry.api: a GPTScore scorer or an lm-eval `variant=` named by a user's variant is looked up there
    "evaluators": {"variants", "registry.spec", "registry.builtins", "registry.api"},
    "jobs": {"db", "registry", "evaluators", "variants"},
    "leaderboard": {"db", "registry", "evaluators.stats", "evaluators.compare", "jobs"},
    "cli": {"registry", "evaluators", "jobs", "leaderboard"},  # the store only through registry/jobs functions
    "assets": set(),
}
# rooms whose modules must not import torch when imported (design.md: light registry and store)
NO_TORCH_AT_IMPORT = {"registry", "db", "cli", "leaderboard", "jobs.queue", "jobs.worker", "jobs.schedules"}


def _room(module: str) -> str:
    """'ssmboard.db.queries' -> 'db'; the package root and common modules map to themselves."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(tree: ast.AST):
    """(module imported, line, at module level) for every import, skipping TYPE_CHECKING blocks."""
    def walk(node, top):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child.lineno, top
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module == "ssmboard":
                    for alias in child.names:
                        yield f"ssmboard.{alias.name}", child.lineno, top
                else:
                    yield child.module, child.lineno, top
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from walk(child, inner)
    yield from walk(tree, True)


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if "migrations" in parts or "assets" in parts:
            continue  # Alembic's env and revisions: the store's own files
        yield path, ".".join(parts)


def _allowed(src_room: str, target: str) -> bool:
    tgt = target.split(".")
    room = tgt[1] if len(tgt) > 1 else ""
    if room in COMMON or room == src_room:
        return True
    for allowed in ALLOWED[src_room]:
        if ".".join(tgt[1:]) == allowed or ".".join(tgt[1:]).startswith(allowed + "."):
            return True
    return False


def test_every_module_belongs_to_a_room():
    rooms = {_room(mod) for _, mod in _sources()} - {""} - COMMON
    assert rooms <= set(ALLOWED), f"packages with no rule in test_rooms.ALLOWED: {rooms - set(ALLOWED)}"


def test_rooms_import_only_downward():
    bad = []
    for path, module in _sources():
        room = _room(module)
        if room in ("", *COMMON):
            continue
        for target, line, _ in _imports(ast.parse(path.read_text())):
            if target.startswith("ssmboard") and not _allowed(room, target):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {room} imports {target}")
    assert not bad, "imports against design.md's rooms:\n" + "\n".join(bad)


def test_nothing_imports_the_cli():
    bad = [f"{path.relative_to(PACKAGE.parent)}:{line}"
           for path, module in _sources() if _room(module) != "cli"
           for target, line, _ in _imports(ast.parse(path.read_text()))
           if target == "ssmboard.cli" or target.startswith("ssmboard.cli.")]
    assert not bad, f"only the CLI may import the CLI: {bad}"


def test_light_rooms_do_not_import_torch_at_import_time():
    bad = []
    for path, module in _sources():
        room = _room(module)
        if room not in NO_TORCH_AT_IMPORT and ".".join(module.split(".")[1:3]) not in NO_TORCH_AT_IMPORT:
            continue
        for target, line, top in _imports(ast.parse(path.read_text())):
            if top and target.split(".")[0] in ("torch", "triton", "transformers"):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {target}")
    assert not bad, f"module-level imports of torch/triton/transformers in light rooms: {bad}"


def test_the_contract_catches_an_upward_import(tmp_path):
    """The checker itself: a store module importing the registry is reported."""
    tree = ast.parse("import os\nfrom ssmboard.registry.spec import VariantSpec\ndef f():\n    import torch\n")
    found = list(_imports(tree))
    assert ("ssmboard.registry.spec", 2, True) in found and ("torch", 4, False) in found
    assert not _allowed("db", "ssmboard.registry.spec") and _allowed("registry", "ssmboard.db.queries")
    assert _allowed("registry", "ssmboard.variants.backends") and not _allowed("registry", "ssmboard.variants.build")
