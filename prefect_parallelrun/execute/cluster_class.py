"""A `DaskCompute` block's `cluster_class`: imported from its dotted path, and asked which
arguments it takes."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from prefect_parallelrun.execute.compute_target import ComputeTargetError


def import_cluster_class(dotted_path: str) -> Callable[..., Any]:
    """The cluster class a dotted path names, such as dask_jobqueue.SLURMCluster.

    Args:
        dotted_path: The module's dotted path, a dot, and the class's name.

    Returns:
        The class.

    Raises:
        ComputeTargetError: The module or the class cannot be imported; the message says
            what to give and to install.
    """
    module_name, _, class_name = dotted_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ComputeTargetError(
            f"DaskCompute cluster_class {dotted_path!r} cannot be imported ({exc}). Give a dotted "
            "path such as dask_jobqueue.SLURMCluster, and install its package."
        ) from exc


def takes_argument(cluster_class: Callable[..., Any], name: str) -> bool:
    """Whether the class's constructor names the argument (not through **kwargs alone).

    Args:
        cluster_class: The class.
        name: The argument's name.

    Returns:
        True when its signature has a parameter of that name; False when it has none, or
        its signature cannot be read.
    """
    try:
        parameters = inspect.signature(cluster_class).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters
