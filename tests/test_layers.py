"""The package's shape (docs/DESIGN.md): imports only point down the layers, and no module
reaches itself through its imports, whether at module level or inside a function."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nanobench"
# What each layer may import from nanobench, besides itself.
ALLOWED = {
    "errors": set(),
    "files": {"errors"},
    "process": set(),
    "store": {"errors", "files", "process"},
    "measure": {"errors", "files", "process"},
    "run": {"errors", "files", "process", "store", "measure"},
    "ingest": {
        "errors",
        "files",
        "process",
        "store",
        "measure",
        "run",
    },  # other trainers' logs -> results, beside run
    "analyze": {"errors", "files", "process", "store", "measure", "run"},
    "present": {"errors", "files", "process", "store", "measure", "run", "analyze"},
    "cli": {
        "errors",
        "files",
        "process",
        "store",
        "measure",
        "run",
        "ingest",
        "analyze",
        "present",
    },
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every nanobench module `path` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nanobench"):
            for alias in node.names:  # `from nanobench.run import train` names a module
                candidate = f"{node.module}.{alias.name}"
                found.add(
                    candidate
                    if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists()
                    else node.module
                )
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("nanobench")}
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "package"


GRAPH = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_imports_point_down_the_layers():
    wrong = []
    for module, targets in GRAPH.items():
        own = layer(module)
        if own not in ALLOWED:  # nanobench/__init__.py, __main__.py
            continue
        for target in targets:
            if layer(target) not in ALLOWED[own] | {own, "package"}:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers: " + ", ".join(sorted(wrong))


def test_no_import_circles():
    def reaches(start, node, seen):
        for nxt in GRAPH.get(node, ()):
            if nxt == start:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reaches(start, nxt, seen):
                    return True
        return False

    circles = [m for m in GRAPH if reaches(m, m, set())]
    assert not circles, f"modules that import themselves through others: {circles}"


def test_the_checker_sees_a_wrong_arrow():
    """The rule itself: an analysis module importing presentation would be caught."""
    assert "present" not in ALLOWED["analyze"] and "run" not in ALLOWED["measure"]
    assert imports_of(PACKAGE / "present" / "report.py") >= {"nanobench.analyze.compare"}
