"""The source tree's shape: packages import down, never in pairs; modules and functions stay small.

A "package" is a first-level name under ``smsgateway``: a directory (``messages``) or a
module (``app``). The checks read the source with ``ast``, so an import inside a
function or under ``TYPE_CHECKING`` counts like any other.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "smsgateway"

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Package pairs that still import each other. Only ever shrink this set.
ALLOWED_PAIRS: frozenset[tuple[str, str]] = frozenset()

# Over the limits today, being split elsewhere. Only ever shrink these sets.
ALLOWED_LONG_MODULES: frozenset[str] = frozenset()
ALLOWED_LONG_FUNCTIONS: frozenset[str] = frozenset()

# The bottom layer: tables, vocabularies and infrastructure every domain may use.
BOTTOM = frozenset(
    {
        "models",
        "booking",
        "numbers",
        "db",
        "config",
        "errors",
        "types",
        "encoding",
        "expiring",
        "context",
        "texts",
        "sealing",
    }
)


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _package_of(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _is_package(name: str) -> bool:
    return (SRC / name).is_dir() or (SRC / f"{name}.py").is_file()


def _imported_packages(tree: ast.AST) -> set[str]:
    """The first-level ``smsgateway`` packages a module imports, wherever the import is."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "smsgateway" and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "smsgateway":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from smsgateway import x: a package only if x is one
                found.update(a.name for a in node.names if _is_package(a.name))
    return found


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in _modules():
        source = _package_of(path)
        imported = _imported_packages(ast.parse(path.read_text(), str(path)))
        edges[source].update(imported - {source})
    return edges


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    """(qualified name, lines from ``def`` to the end of its body) of every function."""
    found: list[tuple[str, int]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                found.append((name, node.end_lineno - node.lineno + 1))
            found.extend(_functions(node, f"{name}."))
        else:
            found.extend(_functions(node, prefix))
    return found


def test_no_two_packages_import_each_other() -> None:
    edges = _edges()
    pairs = {
        tuple(sorted((a, b))) for a, targets in edges.items() for b in targets if a in edges[b]
    }
    assert pairs <= ALLOWED_PAIRS, f"new mutually-importing packages: {pairs - ALLOWED_PAIRS}"
    assert pairs == ALLOWED_PAIRS, f"no longer import each other, drop: {ALLOWED_PAIRS - pairs}"


def test_modules_and_functions_are_small() -> None:
    long_modules: list[str] = []
    long_functions: list[str] = []
    for path in _modules():
        rel = path.relative_to(SRC).as_posix()
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES and rel not in ALLOWED_LONG_MODULES:
            long_modules.append(f"{rel} ({len(text.splitlines())} lines)")
        for name, lines in _functions(ast.parse(text, rel)):
            if lines > MAX_FUNCTION_LINES and f"{rel}:{name}" not in ALLOWED_LONG_FUNCTIONS:
                long_functions.append(f"{rel}:{name} ({lines} lines)")
    assert long_modules == [], f"modules over {MAX_MODULE_LINES} lines"
    stale = {name.split(":")[0] for name in ALLOWED_LONG_FUNCTIONS} - {
        p.relative_to(SRC).as_posix() for p in _modules()
    }
    assert stale == set(), "allowed long functions in modules that are gone"
    assert long_functions == [], f"functions over {MAX_FUNCTION_LINES} lines"


def test_the_bottom_layer_imports_no_domain() -> None:
    edges = _edges()
    assert all(_is_package(name) for name in BOTTOM)
    upward = {name: sorted(edges[name] - BOTTOM) for name in BOTTOM if edges[name] - BOTTOM}
    assert upward == {}


def test_the_checks_see_imports() -> None:
    # Guards the guard: a parse that found nothing would pass every test above.
    edges = _edges()
    assert "models" in edges["messages"]
    assert {"clients", "scope"} <= edges["deps"]
    assert _functions(ast.parse("class A:\n    def f(self):\n        pass\n")) == [("A.f", 2)]
