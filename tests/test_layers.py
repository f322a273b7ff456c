"""The package's shape (docs/DESIGN.md): imports only point down the layers, and no module
reaches itself through its imports, whether at module level or inside a function."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nanobench"
DESIGN = PACKAGE.parent / "docs" / "DESIGN.md"


def layer_rules(text: str) -> dict[str, set[str]]:
    """The table between the layer-rules markers of DESIGN.md: layer -> what it may import."""
    block = text.split("<!-- layer rules: read by tests/test_layers.py -->")[1]
    block = block.split("<!-- end of layer rules -->")[0]
    rules = {}
    for line in block.strip().splitlines()[2:]:  # past the heading and the |---| row
        name, allowed = (cell.strip() for cell in line.strip().strip("|").split("|"))
        rules[name] = {a.strip() for a in allowed.split(",") if a.strip()}
    return rules


ALLOWED = layer_rules(DESIGN.read_text(encoding="utf-8"))


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


def wrong_arrows(graph: dict[str, set[str]], allowed: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in graph.items():
        own = layer(module)
        if own not in allowed:  # nanobench/__init__.py, __main__.py
            continue
        for target in targets:
            if layer(target) not in allowed[own] | {own, "package"}:
                wrong.append(f"{module} -> {target}")
    return sorted(wrong)


def test_imports_point_down_the_layers():
    wrong = wrong_arrows(GRAPH, ALLOWED)
    assert not wrong, "imports against the layers: " + ", ".join(wrong)


def test_the_rules_are_the_documented_table():
    """Read by hand from DESIGN.md: a row or a layer lost from the table fails here."""
    assert set(ALLOWED) == {
        "errors", "process", "files", "store", "measure", "run", "ingest", "analyze",
        "present", "cli",
    }  # fmt: skip
    assert ALLOWED["present"] == {"errors", "files", "process", "store", "analyze"}
    assert ALLOWED["measure"] == {"errors", "files", "process"}
    assert ALLOWED["errors"] == set()


def unnamed_modules(text: str, paths: list[Path]) -> list[str]:
    """Modules DESIGN.md never names: a module of a layer folder must appear in that layer's
    paragraph of "What each part owns" (`- **`run/`**: ...`) by its file name, or anywhere as
    `layer/name`; a top-level module as `name.py`."""
    paragraphs = {
        m.group(1): m.group(2) for m in re.finditer(r"\n- \*\*`(\w+)/`\*\*(.*?)(?=\n- \*\*|\n#)", text, re.S)
    }  # fmt: skip
    missing = []
    for p in paths:
        rel = p.relative_to(PACKAGE)
        if p.stem in ("__init__", "__main__"):
            continue
        if len(rel.parts) == 1:
            named = f"{p.stem}.py" in text
        else:
            own = paragraphs.get(rel.parts[0], "")
            named = re.search(rf"\b{p.stem}\b", own) or f"{rel.parts[0]}/{p.stem}" in text
        if not named:
            missing.append(str(rel))
    return sorted(missing)


def test_design_names_every_module():
    text = DESIGN.read_text(encoding="utf-8")
    missing = unnamed_modules(text, list(PACKAGE.rglob("*.py")))
    assert not missing, f"modules docs/DESIGN.md does not name: {missing}"


def test_a_module_named_only_in_another_layers_paragraph_counts_as_unnamed():
    text = "\n- **`run/`**: `train.py` is the loop.\n- **`analyze/`**: `pairs.py`.\n# end"
    paths = [PACKAGE / "run" / "train.py", PACKAGE / "run" / "pairs.py", PACKAGE / "cli.py"]
    assert unnamed_modules(text, paths) == ["cli.py", "run/pairs.py"]


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
    """Given a wrong arrow (analysis importing presentation, measurement importing the run
    layer), the checker names exactly those; the right arrows beside them pass."""
    graph = {
        "nanobench.analyze.pairs": {"nanobench.present.report", "nanobench.store.meta"},
        "nanobench.measure.peaks": {"nanobench.run.train", "nanobench.errors"},
        "nanobench.present.tables": {"nanobench.analyze.compare"},
    }
    assert wrong_arrows(graph, ALLOWED) == [
        "nanobench.analyze.pairs -> nanobench.present.report",
        "nanobench.measure.peaks -> nanobench.run.train",
    ]
    # and the real graph is read at any depth: report.py's import of compare is seen
    assert imports_of(PACKAGE / "present" / "report.py") >= {"nanobench.analyze.compare"}
