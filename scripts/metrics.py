"""Size and shape metrics of the llmcli package: long functions, long modules, import circles.

``python scripts/metrics.py`` prints every function over 60 lines, every module over
400 lines and every import circle inside ``llmcli/cli``; ``tests/test_metrics.py``
enforces the same limits. Measured on the source (AST), so comments and docstrings
count as lines, as a reader sees them.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "llmcli"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


@dataclass(frozen=True)
class Function:
    module: str
    name: str
    lines: int
    """Lines of the body, docstring included, signature excluded: a Typer command's
    signature is its table of options (declarations, one per option), not code."""
    body_lines: int
    """Lines of the body after the docstring."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> Iterator[Path]:
    yield from sorted(PACKAGE.rglob("*.py"))


def module_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def functions(path: Path) -> Iterator[Function]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0].lineno
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
                and len(body) > 1
            ):
                body = body[1:]
            end = node.end_lineno or node.lineno
            yield Function(module_name(path), node.name, end - first + 1, end - body[0].lineno + 1)


def imports(path: Path) -> set[str]:
    """Every llmcli module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    package = module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("llmcli"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if base.startswith("llmcli"):
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
    return found


def import_graph(prefix: str) -> dict[str, set[str]]:
    known = {module_name(p): p for p in modules()}
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        if name.startswith(prefix):
            graph[name] = {m for m in imports(path) if m in known and m.startswith(prefix)}
            graph[name].discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def report() -> list[str]:
    lines = []
    for path in modules():
        n = module_lines(path)
        if n > MAX_MODULE_LINES:
            lines.append(f"module   {module_name(path)}: {n} lines")
        for fn in functions(path):
            if fn.lines > MAX_FUNCTION_LINES:
                lines.append(f"function {fn.module}.{fn.name}: {fn.lines} lines")
    for cycle in cycles(import_graph("llmcli.cli")):
        lines.append("circle   " + " -> ".join(cycle))
    return lines


if __name__ == "__main__":
    problems = report()
    print("\n".join(problems) if problems else "all within limits")
    sys.exit(1 if problems else 0)
