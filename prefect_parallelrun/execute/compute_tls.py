"""TLS for the compute targets: a block's TLS settings as one `Security`, and what is said
about connections that are unsafe or fail.

A block's TLS settings become one `distributed.security.Security` that every connection of the
job uses: the client to a `tls://` scheduler, and the `security=` of a `cluster_class` that
takes one. A plain `tcp://` scheduler that is not on this machine gets a warning: whoever can
reach it can run code on its workers.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from typing import Any

import dask
from distributed.comm.addressing import parse_address, parse_host_port
from distributed.security import Security

from prefect_parallelrun.execute.compute_target import ComputeTargetError

SECURED_CLUSTER_DOCS = 'docs/execution.md, "Running against a secured cluster"'
TLS_SETTINGS = (
    "the DaskCompute block's CA certificate (tls_ca_file or tls_ca_pem) and this client's "
    "certificate and key (tls_client_cert and tls_client_key, or tls_client_cert_pem and "
    "tls_client_key_pem)"
)


def client_security(tls_settings: dict[str, Any], address: str) -> Security | None:
    """The `Security` for the job's client to the scheduler at `address`.

    Args:
        tls_settings: `distributed.security.Security` keyword arguments (a block's
            `tls_settings()`); empty for Dask's own configuration (`distributed.comm.tls`, a
            security loader).
        address: The scheduler's address, such as tls://host:8786.

    Returns:
        The Security, its certificates loaded; None when `tls_settings` is empty.

    Raises:
        ComputeTargetError: A certificate or key cannot be loaded, or `address` is tls://
            and no client certificate is set.
    """
    security = _load_security(tls_settings, f"the scheduler at {address}")
    if scheme(address) == "tls" and not _has_client_certificate(security):
        raise ComputeTargetError(
            f"The Dask scheduler at {address} requires TLS (a tls:// address), and no "
            f"client certificate is set. Set {TLS_SETTINGS}, or Dask's "
            f"distributed.comm.tls configuration. See {SECURED_CLUSTER_DOCS}."
        )
    return security


def cluster_security(tls_settings: dict[str, Any], dotted_path: str) -> Security | None:
    """The `Security` of a cluster the job starts: its scheduler, workers and client.

    The job owns this cluster, so one certificate serves all three roles, as with
    `Security.temporary()`.

    Args:
        tls_settings: `distributed.security.Security` keyword arguments for the client.
        dotted_path: The cluster class, for the error message.

    Returns:
        The Security, its certificates loaded; None when `tls_settings` is empty.

    Raises:
        ComputeTargetError: A certificate or key cannot be loaded.
    """
    roles = {
        f"tls_{role}_{part}": tls_settings[f"tls_client_{part}"]
        for role in ("scheduler", "worker") for part in ("cert", "key")
        if f"tls_client_{part}" in tls_settings
    }
    return _load_security(tls_settings | roles, f"the {dotted_path} cluster")


def connection_failure(address: str, error: BaseException) -> str:
    """The message for a scheduler that cannot be reached, with what to check.

    Args:
        address: The scheduler's address.
        error: What connecting raised.

    Returns:
        The message, naming the address, the error and the likely fix.
    """
    hint = (
        "Check that the scheduler is running and reachable from this machine, that the CA "
        "certificate is the one that signed the scheduler's certificate, and that the "
        "scheduler's CA signed this client's certificate"
        if scheme(address) == "tls"
        else "Check that the scheduler is running and reachable from this machine; if it "
        f"requires TLS, give its tls:// address and {TLS_SETTINGS}"
    )
    return (
        f"Cannot connect to the Dask scheduler at {address} ({type(error).__name__}: {error}). "
        f"{hint}. See {SECURED_CLUSTER_DOCS}."
    )


def plain_tcp_warning(address: str) -> str | None:
    """The warning for a scheduler reached over plain TCP on another machine.

    Loopback addresses (127.0.0.0/8, ::1, and names such as "localhost" that resolve only
    to them) are safe: nothing off this machine can connect to them.

    Args:
        address: A scheduler address, such as tcp://10.0.0.5:8786.

    Returns:
        The warning, naming the risk and the fix; None for a tls:// or loopback address, or
        for text that is not an address (connecting fails with its own message).
    """
    try:
        address_scheme, location = parse_address(address)
        host, _ = parse_host_port(location, default_port=8786)
    except ValueError:
        return None
    if address_scheme != "tcp" or not host or _is_loopback(host):
        return None
    return (
        f"The Dask scheduler at {address} is reached over plain TCP: anyone who can reach that "
        "address can send its workers code to run, and the job's data and results cross the "
        "network unencrypted. Run the scheduler and workers with TLS, and give the job its "
        f"tls:// address and {TLS_SETTINGS}. See {SECURED_CLUSTER_DOCS}."
    )


def scheme(address: str) -> str:
    """The scheme of a Dask address.

    Args:
        address: A Dask address, such as tls://host:8786 (no scheme means tcp).

    Returns:
        The scheme, such as "tcp" or "tls".
    """
    return parse_address(address)[0]


def _load_security(tls_settings: dict[str, Any], where: str) -> Security | None:
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
