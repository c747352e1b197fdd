"""Compute targets: where a job's Dask workers come from.

`open_compute` turns a config's `compute_target` into a `distributed.Client` for the length of
a job. One base class holds what every target shares (open a client, close what the job
started); the subclasses differ only in how the cluster is found or made:

- `"local"`: a scheduler and `node_count` worker processes on this machine, started as
  commands (never through multiprocessing's spawn), closed after.
- `"tcp://host:port"` (any scheduler URL): a running scheduler, left running.
- `"task_runner"`: the cluster of the calling flow's `DaskTaskRunner`; `ParallelRunStep.run()`
  turns it into that cluster's scheduler address (dispatch/shared_cluster.py).
- a `DaskCompute` block, or the name of a saved one: its `address`, or its `cluster_class`
  started with `cluster_kwargs`, then adapted (`adapt_kwargs`) or scaled to `node_count`; a
  block with neither is "local", or a `distributed.LocalCluster` when it has `cluster_kwargs`
  or `adapt_kwargs` (whose worker processes need the script's main guard).

A block's TLS settings become one `distributed.security.Security` that every connection of the
job uses: the client to a `tls://` scheduler, and the `security=` of a `cluster_class` that
takes one. A plain `tcp://` scheduler that is not on this machine gets a warning: whoever can
reach it can run code on its workers.
"""

from __future__ import annotations

import importlib
import inspect
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import dask
from distributed import Client
from distributed.comm.addressing import parse_address, parse_host_port
from distributed.security import Security

from prefect_parallelrun.config.dask_compute import check_cluster_choice
from prefect_parallelrun.execute.hardware import default_process_count
from prefect_parallelrun.execute.local_cluster import local_cluster

LOCAL = "local"
TASK_RUNNER = "task_runner"
LOCAL_CLUSTER_CLASS = "distributed.LocalCluster"
SECURED_CLUSTER_DOCS = 'docs/execution.md, "Running against a secured cluster"'
TLS_SETTINGS = (
    "the DaskCompute block's CA certificate (tls_ca_file or tls_ca_pem) and this client's "
    "certificate and key (tls_client_cert and tls_client_key, or tls_client_cert_pem and "
    "tls_client_key_pem)"
)


class ComputeTargetError(ValueError):
    """A `compute_target` that names no usable cluster."""


class ComputeTarget:
    """A Dask cluster for one job: `open()` yields a Client and closes what it started."""

    def __init__(self, node_count: int, process_count_per_node: int | None):
        if node_count <= 0:
            raise ComputeTargetError(f"node_count must be > 0; got {node_count}.")
        self.node_count = node_count
        self.process_count_per_node = process_count_per_node

    @contextmanager
    def open(self) -> Iterator[Client]:
        cluster = self._start_cluster()
        try:
            with self._connect(cluster) as client:
                yield client
        finally:
            if cluster is not None:
                cluster.close()

    def security_warning(self) -> str | None:
        """A warning for the job's log when the connection to the cluster is unsafe."""
        return None

    def _start_cluster(self) -> Any | None:
        """The cluster the job starts (and closes), or None to connect to a scheduler."""
        return None

    def _connect(self, cluster: Any | None) -> Client:
        # A cluster's Client takes the cluster's own `security`.
        return Client(cluster)


class SchedulerCompute(ComputeTarget):
    """A running Dask scheduler; the job uses it and leaves it running.

    `tls_settings` are `distributed.security.Security` keyword arguments; with none, Dask's
    own configuration (`distributed.comm.tls`, a security loader) applies.

    Raises:
        ComputeTargetError: a `tls://` address with no client certificate, or TLS settings
            whose certificate or key cannot be loaded.
    """

    def __init__(
        self, address: str, node_count: int, process_count_per_node: int | None,
        tls_settings: dict[str, Any] | None = None,
    ):
        super().__init__(node_count, process_count_per_node)
        self.address = address
        self.security = _security(tls_settings or {}, f"the scheduler at {address}")
        if _scheme(address) == "tls" and not _has_client_certificate(self.security):
            raise ComputeTargetError(
                f"The Dask scheduler at {address} requires TLS (a tls:// address), and no "
                f"client certificate is set. Set {TLS_SETTINGS}, or Dask's "
                f"distributed.comm.tls configuration. See {SECURED_CLUSTER_DOCS}."
            )

    def security_warning(self) -> str | None:
        return plain_tcp_warning(self.address)

    def _connect(self, cluster: Any | None) -> Client:
        try:
            return Client(self.address, security=self.security)
        except (OSError, ssl.SSLError) as error:
            raise ComputeTargetError(_connection_failure(self.address, error)) from error


class ClusterCompute(ComputeTarget):
    """A cluster class the job starts with `cluster_kwargs`, scales or adapts, and closes."""

    def __init__(
        self,
        cluster_class: str,
        cluster_kwargs: dict[str, Any],
        adapt_kwargs: dict[str, Any] | None,
        node_count: int,
        process_count_per_node: int | None,
        dask_log_level: int = logging.WARNING,
        tls_settings: dict[str, Any] | None = None,
    ):
        super().__init__(node_count, process_count_per_node)
        self.cluster_class = _import_cluster_class(cluster_class)
        self.cluster_kwargs = dict(cluster_kwargs)
        self.adapt_kwargs = adapt_kwargs
        self.dask_log_level = dask_log_level
        if tls_settings:
            self.cluster_kwargs["security"] = self._cluster_security(cluster_class, tls_settings)

    def _cluster_security(self, dotted_path: str, tls_settings: dict[str, Any]) -> Security | None:
        if "security" in self.cluster_kwargs:
            raise ComputeTargetError(
                f"DaskCompute cluster_kwargs has 'security' and the block has TLS settings "
                f"too; keep one of them for the {dotted_path} cluster."
            )
        if not _takes_argument(self.cluster_class, "security"):
            raise ComputeTargetError(
                f"DaskCompute cluster_class {dotted_path} takes no 'security' argument, so the "
                "block's TLS settings cannot reach it. Configure TLS through its own "
                "cluster_kwargs and remove the TLS settings from the block."
            )
        # The job owns this cluster: one certificate serves its scheduler, workers and client,
        # as with Security.temporary().
        roles = {
            f"tls_{role}_{part}": tls_settings[f"tls_client_{part}"]
            for role in ("scheduler", "worker") for part in ("cert", "key")
            if f"tls_client_{part}" in tls_settings
        }
        return _security(tls_settings | roles, f"the {dotted_path} cluster")

    @contextmanager
    def open(self) -> Iterator[Client]:
        # dask-jobqueue's scheduler runs in this process: its INFO lines (each worker joining
        # and leaving) would bury the job's own log.
        dask_logger = logging.getLogger("distributed")
        previous = dask_logger.level
        dask_logger.setLevel(self.dask_log_level)
        try:
            with super().open() as client:
                if self.adapt_kwargs is None:
                    # A batch system starts the workers' jobs when it can (scale() only submits
                    # them); the job's slots and its spread over nodes need them all connected.
                    client.wait_for_workers(self.node_count)
                yield client
        finally:
            dask_logger.setLevel(previous)

    def _start_cluster(self) -> Any:
        cluster = self.cluster_class(**self.cluster_kwargs)
        try:
            if self.adapt_kwargs is not None:
                cluster.adapt(**self.adapt_kwargs)
            else:
                cluster.scale(self.node_count)
        except BaseException:
            cluster.close()
            raise
        return cluster


class LocalCompute(ComputeTarget):
    """`node_count` worker processes on this machine, each with one thread per process slot.

    The scheduler and workers are processes of their own (see `local_cluster`), so a plain
    script with no main guard works.
    """

    def __init__(self, node_count: int, process_count_per_node: int | None, dask_log_level: int):
        super().__init__(node_count, process_count_per_node)
        self.dask_log_level = dask_log_level

    def _start_cluster(self) -> Any:
        return local_cluster(
            n_workers=self.node_count,
            threads_per_worker=self.process_count_per_node
            or default_process_count(self.node_count),
            dask_log_level=self.dask_log_level,
        )


class LocalClusterCompute(ClusterCompute):
    """A `distributed.LocalCluster` with the block's own `cluster_kwargs` (or adapted)."""

    def __init__(
        self,
        node_count: int,
        process_count_per_node: int | None,
        cluster_kwargs: dict[str, Any],
        adapt_kwargs: dict[str, Any] | None,
        dask_log_level: int,
    ):
        defaults = {
            "n_workers": node_count if adapt_kwargs is None else 0,
            "threads_per_worker": process_count_per_node or default_process_count(node_count),
            "processes": True,
            "dashboard_address": None,
            "silence_logs": dask_log_level,
        }
        super().__init__(
            LOCAL_CLUSTER_CLASS, defaults | cluster_kwargs, adapt_kwargs, node_count,
            process_count_per_node, dask_log_level,
        )


def open_compute(
    compute_target: Any,
    node_count: int,
    process_count_per_node: int | None,
    load_block: Callable[[str], Any] | None = None,
    dask_log_level: int = logging.WARNING,
    warn: Callable[[str], None] | None = None,
) -> AbstractContextManager[Client]:
    """A context manager yielding a Client to the job's cluster; it closes what it started.

    `compute_target` is "local", a scheduler URL, a `DaskCompute` block (any object with
    `address`, `cluster_class`, `cluster_kwargs` and `adapt_kwargs`, and optionally
    `tls_settings()`), or the name of a saved one, which `load_block` loads. A bad target
    raises `ComputeTargetError` here, before the `with` starts anything; so does a scheduler
    that cannot be reached, when the `with` starts. A cluster the job starts logs at
    `dask_log_level` and above. `warn` is called once, before connecting, when the connection
    is unsafe (a plain tcp:// scheduler on another machine).
    """
    target = compute_target_for(
        compute_target, node_count, process_count_per_node, load_block, dask_log_level
    )
    if warn is not None and (message := target.security_warning()) is not None:
        warn(message)
    return target.open()


def plain_tcp_warning(address: str) -> str | None:
    """The warning for a scheduler reached over plain TCP on another machine, or None.

    Loopback addresses (127.0.0.0/8, ::1, and names such as "localhost" that resolve only
    to them) are safe: nothing off this machine can connect to them.
    """
    try:
        scheme, location = parse_address(address)
        host, _ = parse_host_port(location, default_port=8786)
    except ValueError:
        return None  # not an address: connecting fails with its own message
    if scheme != "tcp" or not host or _is_loopback(host):
        return None
    return (
        f"The Dask scheduler at {address} is reached over plain TCP: anyone who can reach that "
        "address can send its workers code to run, and the job's data and results cross the "
        "network unencrypted. Run the scheduler and workers with TLS, and give the job its "
        f"tls:// address and {TLS_SETTINGS}. See {SECURED_CLUSTER_DOCS}."
    )


def compute_target_for(
    compute_target: Any,
    node_count: int,
    process_count_per_node: int | None,
    load_block: Callable[[str], Any] | None = None,
    dask_log_level: int = logging.WARNING,
) -> ComputeTarget:
    """The `ComputeTarget` a config's `compute_target` stands for."""
    if isinstance(compute_target, str):
        if compute_target.strip().lower() == LOCAL:
            return LocalCompute(node_count, process_count_per_node, dask_log_level)
        if compute_target.strip().lower() == TASK_RUNNER:
            raise ComputeTargetError(
                f'compute_target "{TASK_RUNNER}" (the Dask cluster of the flow that calls the '
                "step) is resolved by ParallelRunStep.run() inside a flow on "
                "prefect_dask.DaskTaskRunner; here there is no such flow. Call the step from "
                "that flow, or give 'local', a scheduler address or a DaskCompute block."
            )
        if "://" in compute_target:
            return SchedulerCompute(compute_target.strip(), node_count, process_count_per_node)
        compute_target = _load_block(compute_target, load_block)
    return _from_block(compute_target, node_count, process_count_per_node, dask_log_level)


def _load_block(name: str, load_block: Callable[[str], Any] | None) -> Any:
    what = (
        f"compute_target {name!r} is not 'local', not a scheduler address such as "
        "tcp://host:8786, and"
    )
    if load_block is None:
        raise ComputeTargetError(f"{what} no saved DaskCompute block can be looked up here.")
    try:
        return load_block(name)
    except Exception as exc:
        raise ComputeTargetError(
            f"{what} no saved DaskCompute block has that name ({type(exc).__name__}: {exc}). "
            "Save one with DaskCompute(...).save(name), or fix the name."
        ) from exc


def _from_block(
    block: Any, node_count: int, process_count_per_node: int | None, dask_log_level: int
) -> ComputeTarget:
    try:
        address, cluster_class = block.address, block.cluster_class
        cluster_kwargs, adapt_kwargs = block.cluster_kwargs or {}, block.adapt_kwargs
    except AttributeError as exc:
        raise ComputeTargetError(
            f"compute_target must be 'local', a scheduler address or a DaskCompute block; got "
            f"a {type(block).__name__} ({exc})."
        ) from exc
    try:  # a stand-in object is not validated as the block is
        check_cluster_choice(address, cluster_class, cluster_kwargs, adapt_kwargs)
    except ValueError as exc:
        raise ComputeTargetError(str(exc)) from None
    # A stand-in object with the four fields only (no TLS settings) will do.
    tls_settings = block.tls_settings() if hasattr(block, "tls_settings") else {}
    if address:
        return SchedulerCompute(address, node_count, process_count_per_node, tls_settings)
    if cluster_class:
        return ClusterCompute(
            cluster_class, cluster_kwargs, adapt_kwargs, node_count, process_count_per_node,
            dask_log_level, tls_settings,
        )
    if cluster_kwargs or adapt_kwargs is not None:
        return LocalClusterCompute(
            node_count, process_count_per_node, cluster_kwargs, adapt_kwargs, dask_log_level
        )
    return LocalCompute(node_count, process_count_per_node, dask_log_level)


def _import_cluster_class(dotted_path: str) -> Callable[..., Any]:
    module_name, _, class_name = dotted_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ComputeTargetError(
            f"DaskCompute cluster_class {dotted_path!r} cannot be imported ({exc}). Give a dotted "
            "path such as dask_jobqueue.SLURMCluster, and install its package."
        ) from exc


def _security(tls_settings: dict[str, Any], where: str) -> Security | None:
    """A Security from `tls_settings`, its certificates loaded now, so that a bad one fails
    before the job starts; None (Dask's own configuration) when there are no settings."""
    if not tls_settings:
        return None
    try:
        security = Security(**tls_settings)
        security.get_connection_args("client")
    except (OSError, ssl.SSLError, ValueError) as error:
        # The error names a file or an SSL reason, never the PEM text itself.
        raise ComputeTargetError(
            f"The TLS settings of the DaskCompute block for {where} cannot be loaded "
            f"({type(error).__name__}: {error}). Check that the CA certificate, the client "
            "certificate and its key are PEM files or PEM text, and that the key belongs to "
            "the certificate."
        ) from error
    return security


def _has_client_certificate(security: Security | None) -> bool:
    if dask.config.get("distributed.client.security-loader", None):
        return True  # credentials come from the loader when the client connects
    tls = (security or Security()).get_tls_config_for_role("client")
    return bool(tls["ca_file"] and tls["cert"])


def _connection_failure(address: str, error: BaseException) -> str:
    hint = (
        "Check that the scheduler is running and reachable from this machine, that the CA "
        "certificate is the one that signed the scheduler's certificate, and that the "
        "scheduler's CA signed this client's certificate"
        if _scheme(address) == "tls"
        else "Check that the scheduler is running and reachable from this machine; if it "
        f"requires TLS, give its tls:// address and {TLS_SETTINGS}"
    )
    return (
        f"Cannot connect to the Dask scheduler at {address} ({type(error).__name__}: {error}). "
        f"{hint}. See {SECURED_CLUSTER_DOCS}."
    )


def _scheme(address: str) -> str:
    return parse_address(address)[0]


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass  # a host name: loopback when every address it resolves to is
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(resolved) and all(
        ipaddress.ip_address(str(address).split("%")[0]).is_loopback for address in resolved
    )


def _takes_argument(cluster_class: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(cluster_class).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters
