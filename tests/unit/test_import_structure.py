"""The import structure of phitune, read from the source with `ast` (nothing is imported).

Every import counts, wherever it is written: at module level, under `if TYPE_CHECKING:` or inside a
function. A function-level import hides a cycle from Python but not from a reader: the two modules
still cannot be understood, tested or moved one without the other.

- No import cycle spans folders (a package's `__init__.py` belongs to its package's folder).
- Evaluation imports nothing from training: `phitune eval` works on any run folder.
- No private name (`_x`) is imported from, or read off, another module: what is shared is public.
- The training core, data, models, evaluation and export never import azure.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
NO_AZURE_FOLDERS = ("training", "distributed", "data", "models", "evaluate", "export")


@dataclass
class Module:
    name: str  # dotted, e.g. "phitune.data.tasks"; a package is named by its folder ("phitune.data")
    path: Path
    is_package: bool
    tree: ast.Module
    imports: set[str] = field(default_factory=set)  # phitune modules imported, at any level
    external: set[str] = field(default_factory=set)  # top-level names of other packages imported
    private: list[tuple[int, str]] = field(default_factory=list)  # (line, "FILE:LINE imports _x from phitune.y")

    @property
    def folder(self) -> str:
        return self.name if self.is_package else self.name.rsplit(".", 1)[0]

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(SRC.parent)}:{node.lineno}"


def _read_modules() -> dict[str, Module]:
    modules = {}
    for path in sorted((SRC / "phitune").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = Module(name, path, is_package, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return modules


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


class _Imports:
    """Resolves import statements of one module to the phitune modules they name."""

    def __init__(self, modules: dict[str, Module]):
        self.modules = modules

    def owner(self, dotted: str) -> str | None:
        """The phitune module `dotted` names, or the module that defines it (`a.b.f` -> `a.b`)."""
        while dotted not in self.modules and "." in dotted:
            dotted = dotted.rsplit(".", 1)[0]
        return dotted if dotted in self.modules else None

    def base(self, module: Module, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        return ".".join(package + ([node.module] if node.module else []))

    def scan(self, module: Module) -> dict[str, str]:
        """Fill in the module's imports; return the local names bound to phitune modules."""
        bound: dict[str, str] = {}
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] != "phitune":
                        module.external.add(alias.name.split(".")[0])
                        continue
                    target = self.owner(alias.name)
                    if target and target != module.name:
                        module.imports.add(target)
                    if alias.asname and alias.name in self.modules:
                        bound[alias.asname] = alias.name
                    elif not alias.asname:
                        bound["phitune"] = "phitune"
            elif isinstance(node, ast.ImportFrom):
                base = self.base(module, node)
                if base.split(".")[0] != "phitune":
                    module.external.add(base.split(".")[0])
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    target = full if full in self.modules else self.owner(base)
                    if target is None or target == module.name:
                        continue
                    module.imports.add(target)
                    if full in self.modules:
                        bound[alias.asname or alias.name] = full
                    if _is_private(alias.name):
                        module.private.append((node.lineno, f"{module.where(node)} imports {alias.name} from {target}"))
        return bound

    def private_attributes(self, module: Module, bound: dict[str, str]) -> None:
        """`alias._x` where `alias` is another phitune module imported by this one."""
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Attribute):
                continue
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if not isinstance(value, ast.Name) or value.id not in bound:
                continue
            current = bound[value.id]
            for attr in chain:
                if f"{current}.{attr}" in self.modules:
                    current = f"{current}.{attr}"
                    continue
                if _is_private(attr) and current != module.name:
                    module.private.append((node.lineno, f"{module.where(node)} reads {attr} of {current}"))
                break


def _graph() -> dict[str, Module]:
    modules = _read_modules()
    imports = _Imports(modules)
    for module in modules.values():
        imports.private_attributes(module, imports.scan(module))
    return modules


def _strongly_connected(modules: dict[str, Module]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(sorted(modules[root].imports)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(modules[child].imports))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _describe(component: list[str], modules: dict[str, Module]) -> str:
    members = set(component)
    edges = [f"    {m} -> {t}" for m in component for t in sorted(modules[m].imports & members)]
    return f"  {', '.join(component)}\n" + "\n".join(edges)


MODULES = _graph()


def test_the_graph_is_read():
    """Guards the other tests against passing on an empty graph."""
    assert {"phitune", "phitune.cli", "phitune.data.tasks", "phitune.evaluate.run"} <= set(MODULES)
    assert "phitune.data.records" in MODULES["phitune.data.loader"].imports


def test_no_import_cycle_spans_folders():
    cycles = [c for c in _strongly_connected(MODULES) if len({MODULES[m].folder for m in c}) > 1]
    assert not cycles, ("import cycles across folders (break them: move what both sides need into a module "
                        "they both import):\n" + "\n".join(_describe(c, MODULES) for c in cycles))


def test_evaluation_imports_nothing_from_training():
    edges = [f"  {m} -> {t}" for m, module in sorted(MODULES.items()) if m.startswith("phitune.evaluate")
             for t in sorted(module.imports) if t == "phitune.training" or t.startswith("phitune.training.")]
    assert not edges, ("evaluation imports training (move what both need below both, e.g. to "
                       "phitune.models or phitune.files):\n" + "\n".join(edges))


def test_no_private_name_is_used_across_modules():
    uses = [f"  {use}" for module in MODULES.values() for _, use in sorted(module.private)]
    assert not uses, ("private names used outside their module (make them public where they are shared, "
                      "or move them to a module both sides import):\n" + "\n".join(uses))


def test_training_data_models_evaluation_and_export_never_import_azure():
    offenders = [f"  {m}" for m, module in sorted(MODULES.items())
                 if m.split(".")[1:2] and m.split(".")[1] in NO_AZURE_FOLDERS and "azure" in module.external]
    assert not offenders, ("modules of " + ", ".join(NO_AZURE_FOLDERS) + " import azure (at module or "
                           "function level); Azure code belongs under phitune.targets:\n" + "\n".join(offenders))
