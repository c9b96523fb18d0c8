"""The project's modules (keras_regnet, training, tflite, design_lab) import each other without a
circle, function-level imports included, and the weights loader never reaches the model builder
(loaders are handed the model)."""

import ast
import pathlib
import subprocess
import sys
from tests.helpers.paths import REPO_ROOT

PACKAGES = ("keras_regnet", "training", "tflite", "design_lab")
LOADER = ["keras_regnet.pretrained.load", "keras_regnet.pretrained.cache", "keras_regnet.pretrained.to_keras",
          "keras_regnet.pretrained.assign", "keras_regnet.pretrained.state_dict", "keras_regnet.pretrained.download",
          "keras_regnet.pretrained.tags", "keras_regnet.presets"]
BUILDERS = {"keras_regnet.model", "keras_regnet.applications", "keras_regnet.checkpoint_converter",
            "keras_regnet.convert"}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in (p for package in PACKAGES for p in (REPO_ROOT / package).rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _is_main_guard(node: ast.AST) -> bool:
    """`if __name__ == "__main__":`: runs only as a script, where the module is `__main__`."""
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _imports(tree: ast.AST) -> list[ast.AST]:
    """Every import statement, at any depth (functions too), outside `__main__` guards."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if _is_main_guard(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _lazy_map() -> dict[str, str]:
    """keras_regnet's PEP 562 lazy names -> the module that defines them (read from __init__.py)."""
    import keras_regnet

    return dict(keras_regnet._LAZY)


def _from_target(base: str, name: str, modules: dict, lazy: dict[str, str]) -> str:
    """The module `from base import name` loads: a submodule, a lazy name's module, or base."""
    if f"{base}.{name}" in modules:
        return f"{base}.{name}"
    if base == "keras_regnet" and name in lazy:
        return lazy[name]
    return base


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (module-level and function-level)."""
    modules, lazy = _modules(), _lazy_map()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                    + ([base] if base else []))
                targets = [_from_target(base, alias.name, modules, lazy) for alias in node.names]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle as a list of modules, or []."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for nxt in graph[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def test_the_walk_sees_function_level_imports():
    graph = import_graph()
    assert "keras_regnet.pretrained.cache" in graph["keras_regnet.pretrained.load"]  # imported inside a function
    assert "keras_regnet.model" in graph["keras_regnet.checkpoint_converter"]  # idem
    assert "tflite.to_tflite" in graph["design_lab.latency_bench"]  # idem, across packages
    assert "keras_regnet.features" in graph["keras_regnet.model"]


def test_no_import_circle_among_the_project_modules():
    assert _cycle(import_graph()) == []


def test_the_weights_loader_never_imports_a_builder():
    graph = import_graph()
    for module in LOADER:
        assert not _reachable(graph, module) & BUILDERS, module


def test_every_module_imports_in_a_fresh_process():
    import importlib.util

    hub_extra = importlib.util.find_spec("keras_hub") is not None  # keras_regnet.hub needs the [hub] extra
    names = [n for n in sorted(_modules()) if n.startswith("keras_regnet") and not n.endswith("__main__")
             and (hub_extra or not n.startswith("keras_regnet.hub"))]
    code = "import importlib\n" + "".join(f"importlib.import_module({n!r})\n" for n in names)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                   cwd=str(REPO_ROOT))
