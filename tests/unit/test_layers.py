"""The engine's layers point down: a module imports only from its own layer or the ones below.

The layers are data (top first). An import that reaches a higher layer makes the lower one
depend on the upper, so the two can no longer change, load or be tested apart; this test names
each such import with its file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAYERS: list[tuple[str, list[str]]] = [
    ("entry points", ["engine.__main__", "engine.worker", "engine.check_cli", "engine.launch",
                      "engine.evaluate.cli", "engine.export_cli", "engine.deploy_cli"]),
    ("stages", ["engine.stages"]),
    ("training", ["engine.training"]),  # the loop, plan, data, checkpoints, curves, memory
    ("export", ["engine.export"]),
    ("advice", ["engine.advice"]),
    ("evaluation", ["engine.evaluate"]),
    ("deploy", ["engine.deploy"]),
    ("backends", ["engine.backends"]),
    ("dataset scan", ["engine.dataset_scan"]),
    ("foundations", ["engine.models", "engine.records", "engine.render", "engine.call_format",
                     "engine.toolcalls", "engine.stops", "engine.context", "engine.examples", "engine.runs", "engine.config",
                     "engine.commands", "engine.event_text", "engine.run_layout",
                     "engine.protocol", "engine.checklist", "engine"]),
]


def layer_of(module: str) -> int:
    """Index of the layer whose longest prefix names the module."""
    best, depth = len(LAYERS), -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and p.count(".") > depth:
                best, depth = i, p.count(".")
    return best


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path, modules: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every engine module the file imports, at any depth in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("engine")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "engine":
            for a in node.names:  # `from engine import checklist` imports engine.checklist
                sub = f"{node.module}.{a.name}"
                found.append((node.lineno, sub if sub in modules else node.module))
    return found


def upward_imports(root: Path) -> list[str]:
    files = sorted((root / "engine").rglob("*.py"))
    modules = {module_name(p, root) for p in files}
    bad: dict[tuple[str, str], str] = {}  # one entry per importing and imported module
    for path in files:
        me = module_name(path, root)
        for line, target in imports(path, root, modules):
            if layer_of(target) < layer_of(me) and (me, target) not in bad:
                bad[me, target] = (f"{path.relative_to(root)}:{line}: {me} ({LAYERS[layer_of(me)][0]})"
                           f" imports {target} ({LAYERS[layer_of(target)][0]})")
    return list(bad.values())


def test_every_engine_module_has_a_layer() -> None:
    files = (ROOT / "engine").rglob("*.py")
    assert [p for p in files if layer_of(module_name(p, ROOT)) == len(LAYERS)] == []


def test_no_import_runs_back_up() -> None:
    assert upward_imports(ROOT) == []


def test_the_rule_sees_an_upward_import(tmp_path: Path) -> None:
    (tmp_path / "engine" / "backends").mkdir(parents=True)
    (tmp_path / "engine" / "stages").mkdir()
    for pkg in ("engine", "engine/backends", "engine/stages"):
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "engine" / "stages" / "base.py").write_text("")
    (tmp_path / "engine" / "backends" / "x.py").write_text(
        "def f():\n    from engine.stages import base\n")
    assert upward_imports(tmp_path) == [
        "engine/backends/x.py:2: engine.backends.x (backends) imports engine.stages.base "
        "(stages)"]


if __name__ == "__main__":  # `python tests/unit/test_layers.py [ROOT]`: list them
    import sys

    found = upward_imports(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
    print("\n".join(found))
    print(f"{len(found)} upward imports")
