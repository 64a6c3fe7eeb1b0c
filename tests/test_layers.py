"""The package's import layers: a question walks down from the service through the answer, the
language model, retrieval and the index to the stores, and no module imports one above its own
layer (function-level and type-checking imports included), so no step climbs back into a module
it has left. ``rag/text/`` is the one layer every step may use. Read from the source (no import)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module may import modules of its own layer or a lower one.
LAYERS: list[tuple[str, ...]] = [
    ("rag.errors",),
    ("rag.text",),
    ("rag.files", "rag.types", "rag.modelid", "rag.hardware", "rag.threads", "rag.config"),
    ("rag.store", "rag.embedding", "rag.ingest"),
    ("rag.index",),
    ("rag.question",),
    ("rag.retrieval",),
    ("rag.llm",),
    ("rag.answer",),
    ("rag.service",),
    ("rag.briefing", "rag.evaluation", "rag.mcp_server", "rag.api", "rag.cli", "rag.ui", "rag.collections",
     "rag.uploads", "rag"),
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = list(rel.with_suffix("").parts)
    if parts[0] == "ui":  # ui/ installs as rag.ui
        parts = ["rag", "ui", *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [*ROOT.joinpath("rag").rglob("*.py"), *ROOT.joinpath("ui").rglob("*.py")]
    return {_module_name(p): p for p in files}


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "rag")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module.split(".")[0] == "rag":
                # "from rag.x import y": y is a module of package rag.x, or a name in rag.x
                out.update(f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module
                           for a in node.names)
    return out


def _layer(module: str) -> int:
    best = -1
    best_len = -1
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    assert best >= 0, f"{module} is in no layer: add it to LAYERS in tests/test_layers.py"
    return best


def _graph() -> dict[str, set[str]]:
    sources = _sources()
    graph: dict[str, set[str]] = {}
    for name, path in sources.items():
        deps = _imports(path, name, set(sources))
        graph[name] = {d for d in deps if d in sources and d != name}
    return graph


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
        for a, deps in sorted(_graph().items())
        for b in sorted(deps)
        if _layer(b) > _layer(a)
    ]
    assert not upward, "imports that climb back up:\n" + "\n".join(upward)


def test_no_import_cycles_between_modules() -> None:
    graph = _graph()
    # Tarjan's strongly connected components: a component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # a package's __init__ re-exporting its own modules is not a cycle worth naming
            if len(component) > 1 and not _only_package_reexports(component, graph):
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _only_package_reexports(component: list[str], graph: dict[str, set[str]]) -> bool:
    """True when the cycle runs only through a package __init__ importing its own submodules."""
    inits = {m for m in component if any(o.startswith(m + ".") for o in component)}
    rest = [m for m in component if m not in inits]
    return len(rest) <= 1 or all(not (graph[m] & set(rest)) for m in rest)


def test_the_layers_see_every_module() -> None:
    for name in _sources():
        _layer(name)
