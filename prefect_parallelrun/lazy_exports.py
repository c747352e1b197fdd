"""One way for a package to import its public names on first use.

An entry-script process imports a few light modules of this package at every start; importing
Prefect, Dask, fsspec or pyarrow there would cost it seconds. A package that must stay light
lists where each public name lives and lets this module load it when it is first used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, module_of: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's `__getattr__` and `__dir__` that import each name of `module_of` on first use.

    Args:
        package: The package's `__name__`.
        module_of: Public name -> the module that defines it: a dotted path, or a module of the
            package written as `.module`.
        namespace: The package's `globals()`: a loaded name is kept there, so it loads once.

    Returns:
        `(__getattr__, __dir__)`, to assign at the package's top level. `__dir__` lists the
        lazy names too (`prefect block register -m` finds blocks through `dir()`).
    """

    def __getattr__(name: str) -> Any:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_of[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(module_of))

    return __getattr__, __dir__
