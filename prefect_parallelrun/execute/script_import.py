"""Importing the user's entry script and the mini-batch reader in an entry-script process.

Also the `azureml_user.parallel_run` alias, through which scripts written for Azure ML import
`EntryScript`. `LoadedScript.load` (`loaded_script.py`) calls these once per process.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from prefect_parallelrun.execute.entry_script import EntryScript
from prefect_parallelrun.execute.script_errors import ScriptLoadError

MiniBatchReader = Callable[[Any, str], AbstractContextManager[Any]]


def install_azureml_alias() -> None:
    """Make `from azureml_user.parallel_run import EntryScript` work, as Azure ML scripts expect.

    Modules of those names already imported are left as they are.
    """
    package = types.ModuleType("azureml_user")
    package.__path__ = []
    module = types.ModuleType("azureml_user.parallel_run")
    module.EntryScript = EntryScript  # type: ignore[attr-defined]
    package.parallel_run = module  # type: ignore[attr-defined]
    sys.modules.setdefault("azureml_user", package)
    sys.modules.setdefault("azureml_user.parallel_run", module)


def import_script(path: str) -> types.ModuleType:
    """Import the entry script as a module named after its file, which runs its top level.

    Args:
        path: The script's absolute path.

    Returns:
        The module, also put in `sys.modules`; it has a callable `run`.

    Raises:
        ScriptLoadError: The file is missing, is not a Python module, or has no run().
        Exception: Whatever the script's top-level code raises (`SystemExit` included).
    """
    if not os.path.isfile(path):
        raise ScriptLoadError(
            f"The entry script {path} does not exist on this node. It must be at the same path "
            "on every worker (the same machine, or a shared filesystem)."
        )
    name = os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ScriptLoadError(f"The entry script {path} cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise ScriptLoadError(
            f"The entry script {path} has no run() function; define run(mini_batch)."
        )
    return module


def import_reader(dotted: str) -> MiniBatchReader:
    """Import the mini-batch reader.

    Args:
        dotted: `module:function` (`ProcessSpec.mini_batch_reader`).

    Returns:
        The reader: called with a mini-batch and a scratch folder, it gives a context manager
        that yields run()'s input.

    Raises:
        ScriptLoadError: It cannot be imported; the error behind it is its `__cause__`.
    """
    module_name, _, attribute = dotted.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:
        raise ScriptLoadError(
            f"The mini-batch reader {dotted} cannot be imported ({type(exc).__name__}: {exc}); "
            "the workers' Python environment may lack a package."
        ) from exc
