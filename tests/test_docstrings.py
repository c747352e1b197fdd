"""Every public function, method and class of the package says its contract: a docstring, with
`Args:` when it takes arguments, `Returns:` (or `Yields:`) when it returns a value, and
`Raises:` when it raises an exception of its own. The API reference and Prefect's run form
are made from these docstrings."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "prefect_parallelrun"
# Methods that a library calls with its own documented contract (logging handlers and
# filters, Dask worker plugins, pydantic hooks): their arguments are the library's.
LIBRARY_HOOKS = frozenset({
    "emit", "filter", "setup", "teardown", "transition", "close", "start", "flush",
    "model_post_init", "format", "handle",
})


def _public(name: str) -> bool:
    return not name.startswith("_")


def _arguments(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    every = function.args.posonlyargs + function.args.args + function.args.kwonlyargs
    names = [argument.arg for argument in every]
    if function.args.vararg:
        names.append(function.args.vararg.arg)
    if function.args.kwarg:
        names.append(function.args.kwarg.arg)
    return [name for name in names if name not in ("self", "cls")]


def _own_nodes(function: ast.AST) -> list[ast.AST]:
    """The function's nodes, without those of the functions and classes it defines."""
    found, stack = [], list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _returns_value(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    annotation = function.returns
    if annotation is None:
        return any(isinstance(node, ast.Return) and node.value is not None
                   for node in _own_nodes(function))
    return ast.unparse(annotation) not in ("None", "NoReturn", "Never")


def _raises_its_own(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(node, ast.Raise) and node.exc is not None
               and isinstance(node.exc, ast.Call) for node in _own_nodes(function))


def _decorators(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    return {ast.unparse(decorator).split("(")[0].split(".")[-1]
            for decorator in function.decorator_list}


def _problems_of_function(
    where: str, function: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool
) -> list[str]:
    docstring = ast.get_docstring(function)
    if docstring is None:
        return [f"{where}: no docstring"]
    decorators = _decorators(function)
    if {"property", "cached_property", "setter"} & decorators:
        return []  # a one-line docstring is the contract of a property
    if in_class and (function.name in LIBRARY_HOOKS
                     or {"field_validator", "model_validator"} & decorators):
        return []
    problems = []
    if _arguments(function) and "Args:" not in docstring:
        problems.append(f"{where}: no 'Args:' section")
    if _returns_value(function) and not ("Returns:" in docstring or "Yields:" in docstring):
        problems.append(f"{where}: no 'Returns:' section")
    if _raises_its_own(function) and "Raises:" not in docstring:
        problems.append(f"{where}: raises, but has no 'Raises:' section")
    return problems


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    module = path.relative_to(PACKAGE.parent).as_posix()
    problems = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _public(node.name):
            problems += _problems_of_function(f"{module} {node.name}()", node, in_class=False)
        if isinstance(node, ast.ClassDef) and _public(node.name):
            if ast.get_docstring(node) is None:
                problems.append(f"{module} class {node.name}: no docstring")
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef) and _public(
                    member.name
                ):
                    problems += _problems_of_function(
                        f"{module} {node.name}.{member.name}()", member, in_class=True
                    )
    return problems


def test_every_public_function_and_class_documents_its_contract():
    problems = [
        problem
        for path in sorted(PACKAGE.rglob("*.py"))
        if not any(part.startswith("_") and part != "__init__.py"
                   for part in path.relative_to(PACKAGE).parts)
        for problem in _problems(path)
    ]
    assert not problems, f"{len(problems)} docstrings lack their contract:\n" + "\n".join(
        problems
    )


def test_no_module_is_over_250_lines_without_saying_why():
    long_ones = [
        f"{path.relative_to(PACKAGE.parent)} ({lines} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > 250
        and "250 lines" not in (ast.get_docstring(ast.parse(path.read_text())) or "")
    ]
    assert not long_ones, (
        "modules over 250 lines whose docstring does not say why they are over "
        "250 lines: " + ", ".join(long_ones)
    )
