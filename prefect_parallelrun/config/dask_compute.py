"""The `DaskCompute` block: where a job's Dask cluster comes from."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, model_validator

from prefect_parallelrun.config.documentation import docs_page


def _as_pem(credential: str, path_field: str) -> Any:
    """The field holding `credential` as PEM text, the alternative to the file at `path_field`."""
    return Field(
        default=None,
        description=f"{credential} as PEM text, kept secret in the block (or {path_field}).",
    )


class DaskCompute(Block):
    """The Dask cluster a parallel run uses: an existing scheduler, or a cluster class to start.

    Give `address` to use a running scheduler (left running after the job), or `cluster_class`
    (with `cluster_kwargs`) to start a cluster for the job and close it afterwards. With neither,
    the job starts a `distributed.LocalCluster` on this machine.

    A `tls://` scheduler is reached with the CA certificate and this client's certificate and
    key, each as a file path (`tls_ca_file`, ...) or as PEM text (`tls_ca_pem`, ...), which the
    block keeps as a secret: masked in the UI and in flow-run parameters, never logged. A
    `cluster_class` that takes a `security` argument receives the same settings.

    Raises:
        ValueError: A `pydantic.ValidationError` naming the fields: `address` and
            `cluster_class` are both set, `cluster_kwargs` or `adapt_kwargs` come with
            `address`, or the TLS settings are inconsistent (a file path and PEM text for one
            credential, text that is not PEM, no CA or no client certificate, TLS settings
            with neither `address` nor `cluster_class`).

    Example:
        Load a saved cluster description and use it as a config's compute target:
        ```python
        from prefect_parallelrun import DaskCompute

        compute = DaskCompute.load("BLOCK_NAME")
        ```

        Save a TLS scheduler with the client's credentials held in the block:
        ```python
        from pathlib import Path

        DaskCompute(
            address="tls://10.0.0.5:8786",
            tls_ca_pem=Path("ca.pem").read_text(),
            tls_client_cert_pem=Path("client.pem").read_text(),
            tls_client_key_pem=Path("client-key.pem").read_text(),
        ).save("secured-cluster")
        ```
    """

    # A validation error must not echo the PEM text it was given.
    model_config = ConfigDict(hide_input_in_errors=True)

    _block_type_name = "Dask Compute"
    _block_type_slug = "parallel-run-dask-compute"
    _logo_url = None  # see config/documentation.py
    _documentation_url = docs_page("reference/compute")  # type: ignore[assignment]  # str is accepted

    address: str | None = Field(
        default=None,
        description="Address of a running Dask scheduler, such as tcp://10.0.0.5:8786.",
    )
    cluster_class: str | None = Field(
        default=None,
        description=(
            "Dotted path of a Dask cluster class to start for the job, "
            "such as dask_jobqueue.SLURMCluster."
        ),
    )
    cluster_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments passed to the cluster class when it is started.",
    )
    adapt_kwargs: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Keyword arguments for cluster.adapt(), such as minimum and maximum; "
            "when unset the cluster is scaled to node_count workers."
        ),
    )

    tls_ca_file: str | None = Field(
        default=None,
        description="Path of the CA certificate (PEM) that signed the scheduler's certificate.",
    )
    tls_client_cert: str | None = Field(
        default=None,
        description="Path of this client's certificate (PEM); its key may be appended to it.",
    )
    tls_client_key: str | None = Field(
        default=None,
        description="Path of this client's private key (PEM), when it is not in the certificate.",
    )
    tls_ca_pem: SecretStr | None = _as_pem("The CA certificate", "tls_ca_file")
    tls_client_cert_pem: SecretStr | None = _as_pem("This client's certificate", "tls_client_cert")
    tls_client_key_pem: SecretStr | None = _as_pem("This client's private key", "tls_client_key")
    require_encryption: bool | None = Field(
        default=None,
        description=(
            "Refuse unencrypted connections; unset, they are refused whenever a certificate "
            "is given."
        ),
    )
    install_environment: bool = Field(
        default=False,
        description=(
            "Install the config environment's missing pip packages on every worker before the "
            "first mini-batch (cached per worker); off, a missing package fails the job."
        ),
    )

    def tls_settings(self) -> dict[str, str | bool]:
        """The block's TLS settings as `distributed.security.Security` keyword arguments.

        PEM text is given to Dask as it is (Dask takes a value with a line break as the
        certificate itself, not a path); nothing is written here.

        Returns:
            `tls_ca_file`, `tls_client_cert`, `tls_client_key` (each a path or PEM text) and
            `require_encryption`, those that are set; empty when the block has no TLS
            settings, so that Dask's own configuration applies.
        """
        settings: dict[str, str | bool] = {}
        for dask_name, path_field, pem_field in TLS_FIELDS:
            path, pem = getattr(self, path_field), getattr(self, pem_field)
            if pem is not None:
                settings[dask_name] = pem.get_secret_value()
            elif path:
                settings[dask_name] = path
        if self.require_encryption is not None:
            settings["require_encryption"] = self.require_encryption
        return settings

    def fields_in_clear(self) -> dict[str, Any]:
        """Every field as plain JSON-able values, PEM text in clear (for a YAML file).

        Returns:
            The fields by name; the PEM fields that are set hold their text.
        """
        fields = self.model_dump(mode="json", exclude={"block_type_slug"})
        for _, _, pem_field in TLS_FIELDS:
            if getattr(self, pem_field) is not None:
                fields[pem_field] = getattr(self, pem_field).get_secret_value()
        return fields

    @model_validator(mode="after")
    def _tls_settings_are_consistent(self) -> DaskCompute:
        for _, path_field, pem_field in TLS_FIELDS:
            pem = getattr(self, pem_field)
            if getattr(self, path_field) and pem is not None:
                raise ValueError(
                    f"DaskCompute takes either '{path_field}' (a file path) or '{pem_field}' "
                    "(PEM text), not both."
                )
            if pem is not None and PEM_MARK not in pem.get_secret_value():
                raise ValueError(
                    f"DaskCompute '{pem_field}' is not PEM text: it must hold the lines from "
                    f"'{PEM_MARK} ...' to '-----END ...'. For a file, give its path in "
                    f"'{path_field}' instead."
                )
        settings = self.tls_settings()
        credentials = settings.keys() & {name for name, _, _ in TLS_FIELDS}
        if credentials and not {"tls_ca_file", "tls_client_cert"} <= credentials:
            raise ValueError(
                "DaskCompute TLS needs both the CA certificate ('tls_ca_file' or 'tls_ca_pem') "
                "and this client's certificate ('tls_client_cert' or 'tls_client_cert_pem'), "
                "with its key unless the certificate file holds it."
            )
        if settings and not (self.address or self.cluster_class):
            raise ValueError(
                "DaskCompute TLS settings apply to a scheduler at 'address' or a cluster "
                "started from 'cluster_class'; the local cluster listens on 127.0.0.1 only. "
                "Set one of them, or remove the TLS settings."
            )
        return self

    @model_validator(mode="after")
    def _address_or_cluster_class(self) -> DaskCompute:
        check_cluster_choice(
            self.address, self.cluster_class, self.cluster_kwargs, self.adapt_kwargs
        )
        return self


def check_cluster_choice(
    address: str | None, cluster_class: str | None, cluster_kwargs: dict | None,
    adapt_kwargs: dict | None,
) -> None:
    """Check that a DaskCompute names one running scheduler or one cluster to start.

    As in prefect-dask's DaskTaskRunner: one existing cluster or one to start, never both.

    Args:
        address: The running scheduler's address, if any.
        cluster_class: The dotted path of the cluster class to start, if any.
        cluster_kwargs: Arguments for the cluster the job starts.
        adapt_kwargs: Adaptive scaling arguments for the cluster the job starts.

    Raises:
        ValueError: Both `address` and `cluster_class` are set, or `address` comes with
            arguments that apply only to a cluster the job starts.
    """
    if address and cluster_class:
        raise ValueError(
            "DaskCompute takes either 'address' (a running scheduler) or 'cluster_class' "
            "(a cluster to start), not both."
        )
    if address and (cluster_kwargs or adapt_kwargs):
        raise ValueError(
            "DaskCompute 'cluster_kwargs' and 'adapt_kwargs' apply to a cluster the job "
            "starts; they cannot be used with 'address'."
        )


PEM_MARK = "-----BEGIN"
# (name in distributed.security.Security, path field, PEM-text field)
TLS_FIELDS = (
    ("tls_ca_file", "tls_ca_file", "tls_ca_pem"),
    ("tls_client_cert", "tls_client_cert", "tls_client_cert_pem"),
    ("tls_client_key", "tls_client_key", "tls_client_key_pem"),
)
