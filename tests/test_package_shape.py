"""The package's shape: no import cycle, no import hidden in a function, one of each primitive.

Every module of ``src/prunebounds`` is parsed with ``ast`` (nothing is imported). The
checks are written as functions of the parsed source, and each is also run on a small
counter-example, so that a check that could never fail would be noticed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "prunebounds"
NAME = "prunebounds"


def _modules(root: Path = PACKAGE) -> dict[str, ast.Module]:
    """Dotted module name (relative to the package; a subpackage by its own name) ->
    parsed source. A subpackage's ``__init__`` is marked with ``_is_package``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        tree = ast.parse(path.read_text(), filename=str(path))
        tree._is_package = rel.name == "__init__"  # type: ignore[attr-defined]
        out[".".join(parts)] = tree
    return out


def _package_targets(node: ast.AST, module: str, is_package: bool = False) -> list[str]:
    """The package modules an import statement may bring in (relative to the package)."""
    targets = []
    if isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolve against the importing module's package
            here = module.split(".") if module else []
            if not is_package:
                here = here[:-1]
            base = here[: len(here) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        elif node.module and (node.module == NAME or node.module.startswith(NAME + ".")):
            prefix = node.module[len(NAME) + 1:]
        else:
            return []
        targets.append(prefix)
        # `from . import x` and `from prunebounds import x` may name a module
        targets += [f"{prefix}.{a.name}" if prefix else a.name for a in node.names]
    elif isinstance(node, ast.Import):
        targets += [a.name[len(NAME) + 1:] for a in node.names
                    if a.name == NAME or a.name.startswith(NAME + ".")]
    return [t for t in targets if t]


def import_graph(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Module -> package modules it imports at module level (the only level allowed)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name] |= {t for t in _package_targets(
                    node, name, getattr(tree, "_is_package", False)) if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def imports_inside_functions(modules: dict[str, ast.Module]) -> list[str]:
    """'module:line' of every package import made inside a function body."""
    bad = []
    for name, tree in modules.items():
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, (ast.Import, ast.ImportFrom)) and \
                            _package_targets(node, name, getattr(tree, "_is_package", False)):
                        bad.append(f"{name}:{node.lineno}")
    return bad


SPECTRAL_CALLS = {"svds", "eigsh", "svdvals"}


def spectral_norm_sites(modules: dict[str, ast.Module]) -> list[str]:
    """'module:line' of every computation of a spectral norm: ``matrix_norm(.., ord=2)``,
    ``np.linalg.norm(.., 2)``, ``svds``, ``eigsh``, ``svdvals``."""
    sites = []
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func.attr if isinstance(node.func, ast.Attribute) else \
                node.func.id if isinstance(node.func, ast.Name) else ""
            if fn in SPECTRAL_CALLS:
                sites.append(f"{name}:{node.lineno}")
            elif fn in ("matrix_norm", "norm"):
                ords = [k.value for k in node.keywords if k.arg == "ord"]
                if len(node.args) >= 2:
                    ords.append(node.args[1])
                if any(isinstance(o, ast.Constant) and o.value in (2, -2) for o in ords):
                    sites.append(f"{name}:{node.lineno}")
    return sites


def accuracy_sites(modules: dict[str, ast.Module]) -> list[str]:
    """'module:line' of every ``<...>.argmax(...) == y`` (or ``!=``): an accuracy or
    error rate computed by hand instead of by :mod:`prunebounds.margins`."""
    def is_argmax(node: ast.AST) -> bool:
        if not isinstance(node, ast.Call):
            return False
        fn = node.func
        return (isinstance(fn, ast.Attribute) and fn.attr == "argmax") or \
            (isinstance(fn, ast.Name) and fn.id == "argmax")

    sites = []
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and \
                    any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops) and \
                    any(is_argmax(side) for side in [node.left, *node.comparators]):
                sites.append(f"{name}:{node.lineno}")
    return sites


# --------------------------------------------------------------------------- the package
MODULES = _modules()


def test_the_package_is_found():
    assert {"validate", "norms", "margins", "cache", "runs", "zoo", "beyond", "counting",
            "bounds", "baselines", "statistics", "sweeps"} <= set(MODULES)
    assert not {"experiments", "modern"} & set(MODULES), "old module names are gone"


def test_import_graph_is_acyclic():
    cycle = find_cycle(import_graph(MODULES))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_function_imports_from_the_package():
    assert imports_inside_functions(MODULES) == []


def test_validate_imports_only_errors():
    assert import_graph(MODULES)["validate"] <= {"errors"}


def test_cache_imports_no_model_code():
    graph = import_graph(MODULES)
    reach, todo = set(), ["cache"]
    while todo:
        for m in graph[todo.pop()]:
            if m not in reach:
                reach.add(m)
                todo.append(m)
    assert not reach & {"models", "zoo", "train", "runs"}, reach


def test_one_spectral_norm():
    sites = [s for s in spectral_norm_sites(MODULES) if not s.startswith("norms:")]
    assert sites == [], f"spectral norms computed outside norms.py: {sites}"
    assert spectral_norm_sites({"norms": MODULES["norms"]}), "norms.py computes one"


def test_one_accuracy():
    sites = [s for s in accuracy_sites(MODULES) if not s.startswith("margins:")]
    assert sites == [], f"accuracies computed outside margins.py: {sites}"


# --------------------------------------------------------------------------- the checks can fail
def _parse(**sources: str) -> dict[str, ast.Module]:
    return {name: ast.parse(src) for name, src in sources.items()}


def test_a_cycle_is_found():
    mods = _parse(a="from .b import f\n", b="from . import c\n", c="from .a import g\n")
    assert find_cycle(import_graph(mods)) == ["a", "b", "c", "a"]
    mods = _parse(a="from .b import f\n", b="import prunebounds.a\n")
    assert find_cycle(import_graph(mods)) is not None
    assert find_cycle(import_graph(_parse(a="from .b import f\n", b="x = 1\n"))) is None


def test_a_function_level_import_is_found():
    mods = _parse(a="def f():\n    from .b import g\n    return g\n", b="g = 1\n")
    assert imports_inside_functions(mods) == ["a:2"]
    mods = _parse(a="def f():\n    import numpy\n    return numpy\n")
    assert imports_inside_functions(mods) == []


@pytest.mark.parametrize("src", [
    "torch.linalg.matrix_norm(A, ord=2)",
    "np.linalg.norm(A, 2)",
    "svds(A, k=1)",
    "scipy.sparse.linalg.eigsh(op, k=1)",
    "torch.linalg.svdvals(A)[0]",
])
def test_a_second_spectral_norm_is_found(src):
    assert spectral_norm_sites(_parse(x=src)) == ["x:1"]


def test_other_norms_are_not_spectral_norms():
    assert spectral_norm_sites(_parse(x="torch.linalg.matrix_norm(A, ord='fro')\n"
                                        "np.linalg.norm(v)\n")) == []


@pytest.mark.parametrize("src", ["float((out.argmax(1) == y).mean())",
                                 "(logits(g, X).argmax(dim=1) != y_test).sum()",
                                 "acc = (y == np.argmax(p, axis=1)).mean()"])
def test_a_second_accuracy_is_found(src):
    assert accuracy_sites(_parse(x=src)) == ["x:1"]


# --------------------------------------------------------------------------- code shown in the book
def literal_includes(root: Path = PACKAGE.parents[1]) -> list[tuple[str, str, str]]:
    """(page, source file, object) of every ``literalinclude`` with ``:pyobject:`` in the
    chapters and the book's pages."""
    found = []
    pages = sorted((root / "notebooks").glob("*.md")) + sorted((root / "book").glob("*.md"))
    for page in pages:
        for m in re.finditer(r"```\{literalinclude\}\s+(\S+)\n:pyobject:\s+(\S+)", page.read_text()):
            found.append((page.name, m.group(1), m.group(2)))
    return found


def test_every_shown_function_exists_where_the_page_says():
    """A page that shows ``:pyobject: f`` of a module must find f there (moving code
    between modules must move the includes too)."""
    includes = literal_includes()
    assert includes, "the chapters show code"
    missing = []
    for page, src, obj in includes:
        path = (PACKAGE.parents[1] / "notebooks" / src).resolve()
        names = set()
        if path.exists():
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    names.add(node.name)
                    if isinstance(node, ast.ClassDef):
                        names |= {f"{node.name}.{n.name}" for n in node.body
                                  if isinstance(n, ast.FunctionDef)}
        if obj not in names:
            missing.append(f"{page}: {src} :pyobject: {obj}")
    assert missing == []
