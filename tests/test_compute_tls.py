"""A TLS-secured Dask scheduler with credentials kept in a DaskCompute block; plain TCP warns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed.security import Security
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
)

from prefect_parallelrun import DaskCompute
from prefect_parallelrun.dispatch.flow import parallel_run
from prefect_parallelrun.execute.compute import ComputeTargetError, open_compute
from prefect_parallelrun.execute.compute_tls import plain_tcp_warning
from tests.jobs import DaskProcesses, JobBench, flow_run_logs


class TlsCluster:
    """A `dask scheduler` and two `dask worker` processes that accept TLS connections only,
    and the credentials of a client they trust."""

    def __init__(self, folder: Path) -> None:
        # One self-signed certificate is the CA, the scheduler's, the workers' and the client's.
        self.credentials = Security.temporary()
        folder.mkdir(parents=True)
        certificate, key = folder / "cert.pem", folder / "key.pem"
        certificate.write_text(self.credentials.tls_client_cert)
        key.write_text(self.credentials.tls_client_key)
        key.chmod(0o600)
        self.processes = DaskProcesses(
            folder / "dask", workers=2, threads=1,
            extra_args=("--protocol", "tls", "--tls-ca-file", str(certificate),
                        "--tls-cert", str(certificate), "--tls-key", str(key)),
            security=self.credentials,
        )
        self.address = self.processes.address

    def block(self) -> DaskCompute:
        """A DaskCompute block for the scheduler, the client's credentials as PEM text."""
        return DaskCompute(
            address=self.address,
            tls_ca_pem=self.credentials.tls_ca_file,
            tls_client_cert_pem=self.credentials.tls_client_cert,
            tls_client_key_pem=self.credentials.tls_client_key,
        )

    def secret_fragments(self) -> list[str]:
        """Text that must appear nowhere: PEM markers, and a line of the key and certificate."""
        key_lines = self.credentials.tls_client_key.splitlines()
        certificate_lines = self.credentials.tls_client_cert.splitlines()
        return [
            "PRIVATE KEY", "BEGIN CERTIFICATE",
            key_lines[len(key_lines) // 2], certificate_lines[len(certificate_lines) // 2],
        ]


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCluster]:
    """For tests that run no entry script: its workers lack a job bench's environment."""
    cluster = TlsCluster(tmp_path_factory.mktemp("tls") / "cluster")
    try:
        yield cluster
    finally:
        cluster.processes.stop()


@pytest.fixture
def job_tls_cluster(bench: JobBench) -> Iterator[TlsCluster]:
    """A TLS cluster whose workers see the bench's environment (started after it is set)."""
    cluster = TlsCluster(bench.root / "cluster")
    try:
        yield cluster
    finally:
        cluster.processes.stop()


def expected_rows(count: int) -> list[str]:
    return [f"item-{number:03d}.txt ok" for number in range(count)]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_job_runs_on_a_tls_scheduler_with_credentials_from_a_block_and_leaks_none(
    bench: JobBench, job_tls_cluster: TlsCluster
):
    tls_cluster = job_tls_cluster
    block_name = f"tls-cluster-{uuid.uuid4().hex[:8]}"
    tls_cluster.block().save(block_name)
    bench.items(["ok"] * 6)
    config = bench.config(compute_target=DaskCompute.load(block_name), node_count=2,
                          process_count_per_node=1)
    step = bench.step(config)
    state = parallel_run(
        config=config, inputs=step.inputs, output=step.output, name=block_name,
        allow_reuse=False, return_state=True,
    )
    result = state.result()
    assert result.succeeded, result.message
    assert bench.rows() == expected_rows(6)

    flow_run_id = state.state_details.flow_run_id
    logs = flow_run_logs(flow_run_id)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    # The flow run's parameters hold the block with its secrets masked.
    compute = flow_run.parameters["config"]["compute_target"]
    assert compute["address"] == tls_cluster.address
    assert compute["tls_client_key_pem"] == "**********"
    assert not [log.message for log in logs if log.level >= 30], "a clean job warned"
    seen = {
        "flow-run parameters": str(flow_run.parameters),
        "flow-run logs": "\n".join(log.message for log in logs),
        "artifacts": "\n".join(str(artifact.data) for artifact in artifacts),
        "result": str(result.to_dict()),
    }
    seen |= {
        str(path): path.read_text(errors="replace")
        for path in bench.output.rglob("*") if path.is_file()
    }
    for fragment in tls_cluster.secret_fragments():
        leaks = [where for where, text in seen.items() if fragment in text]
        assert not leaks, f"certificate or key text in {leaks}"


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_without_a_certificate_the_job_fails_before_any_mini_batch_saying_tls_is_required(
    bench: JobBench, tls_cluster: TlsCluster
):
    bench.items(["ok"] * 2)
    step = bench.step(bench.config(compute_target=DaskCompute(address=tls_cluster.address)))
    with pytest.raises(ComputeTargetError, match="requires TLS") as raised:
        step.run()
    assert "tls_client_cert_pem" in str(raised.value)  # what to set
    assert not bench.calls()
    assert not bench.output.exists()


@pytest.mark.slow
def test_a_plain_tcp_address_of_a_tls_scheduler_fails_at_once_pointing_to_tls(
    tls_cluster: TlsCluster,
):
    plain = tls_cluster.address.replace("tls://", "tcp://")
    with pytest.raises(ComputeTargetError, match="if it requires TLS, give its tls:// address"):
        with open_compute(plain, node_count=2, process_count_per_node=1):
            pass


@pytest.mark.slow
def test_credentials_of_another_ca_are_refused_with_a_message_naming_the_ca(
    tls_cluster: TlsCluster,
):
    stranger = Security.temporary()
    block = DaskCompute(
        address=tls_cluster.address, tls_ca_pem=stranger.tls_ca_file,
        tls_client_cert_pem=stranger.tls_client_cert, tls_client_key_pem=stranger.tls_client_key,
    )
    with pytest.raises(ComputeTargetError, match="the CA certificate is the one that signed"):
        with open_compute(block, node_count=2, process_count_per_node=1):
            pass


def test_a_key_that_does_not_belong_to_the_certificate_fails_without_echoing_it():
    first, second = Security.temporary(), Security.temporary()
    block = DaskCompute(
        address="tls://127.0.0.1:8786", tls_ca_pem=first.tls_ca_file,
        tls_client_cert_pem=first.tls_client_cert, tls_client_key_pem=second.tls_client_key,
    )
    with pytest.raises(ComputeTargetError, match="the key belongs to the certificate") as raised:
        open_compute(block, node_count=1, process_count_per_node=1)
    assert "PRIVATE KEY" not in str(raised.value)


def test_pem_text_is_masked_in_the_block_and_never_echoed_by_its_errors():
    credentials = Security.temporary()
    block = DaskCompute(
        address="tls://10.0.0.5:8786", tls_ca_pem=credentials.tls_ca_file,
        tls_client_cert_pem=credentials.tls_client_cert,
        tls_client_key_pem=credentials.tls_client_key,
    )
    assert "PRIVATE KEY" not in repr(block)
    assert "PRIVATE KEY" not in block.model_dump_json()
    assert block.tls_settings()["tls_client_key"] == credentials.tls_client_key
    assert block.fields_in_clear()["tls_client_key_pem"] == credentials.tls_client_key

    not_pem = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ secret-looking"
    with pytest.raises(ValueError, match="'tls_client_key_pem' is not PEM text") as raised:
        DaskCompute(
            address="tls://10.0.0.5:8786", tls_ca_pem=credentials.tls_ca_file,
            tls_client_cert_pem=credentials.tls_client_cert, tls_client_key_pem=not_pem,
        )
    assert "MIIE" not in str(raised.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"address": "tls://h:8786", "tls_ca_file": "ca.pem", "tls_ca_pem": "-----BEGIN x"},
         "either 'tls_ca_file'"),
        ({"address": "tls://h:8786", "tls_client_cert": "client.pem"}, "needs both the CA"),
        ({"tls_ca_file": "ca.pem", "tls_client_cert": "client.pem"}, "local cluster"),
    ],
)
def test_inconsistent_tls_settings_are_refused_naming_the_fields(fields, message):
    with pytest.raises(ValueError, match=message):
        DaskCompute(**fields)


@pytest.mark.parametrize(
    "address",
    ["tcp://10.0.0.5:8786", "tcp://[2001:db8::5]:8786", "10.0.0.5:8786", "tcp://192.0.2.7"],
)
def test_a_plain_tcp_scheduler_on_another_machine_gets_a_warning_naming_risk_and_fix(address):
    warning = plain_tcp_warning(address)
    assert warning is not None
    assert "plain TCP" in warning and "code to run" in warning
    assert "tls://" in warning and "tls_client_cert_pem" in warning


@pytest.mark.parametrize(
    "address",
    ["tcp://127.0.0.1:8786", "tcp://127.0.1.1:8786", "tcp://[::1]:8786",
     "tcp://localhost:8786", "tcp://LOCALHOST:8786", "tls://10.0.0.5:8786"],
)
def test_a_loopback_or_tls_scheduler_gets_no_warning(address):
    assert plain_tcp_warning(address) is None


def test_open_compute_warns_once_before_connecting():
    warnings: list[str] = []
    # Nothing connects until the `with` starts, so no host is needed at this address.
    open_compute("tcp://192.0.2.7:8786", node_count=1, process_count_per_node=1,
                 warn=warnings.append)
    assert len(warnings) == 1 and "tcp://192.0.2.7:8786" in warnings[0]


@pytest.mark.usefixtures("prefect_server")
def test_a_job_on_a_loopback_tcp_scheduler_logs_no_warning(
    bench: JobBench, dask_processes: DaskProcesses
):
    bench.items(["ok"] * 2)
    step = bench.step(bench.config(compute_target=dask_processes.address))
    state = parallel_run(
        config=step.parallel_run_config, inputs=step.inputs, output=step.output,
        name=f"loopback-{uuid.uuid4().hex[:8]}", allow_reuse=False, return_state=True,
    )
    assert state.result().succeeded
    assert bench.rows() == expected_rows(2)
    logs = flow_run_logs(state.state_details.flow_run_id)
    assert not [log.message for log in logs if log.level >= 30]


class ClusterWithoutSecurity:
    """A cluster class that takes no `security` argument."""

    def __init__(self, n_workers: int = 0) -> None:
        self.n_workers = n_workers


@pytest.mark.slow
# Another cluster in this test process may hold Dask's default HTTP port; only noise.
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use:UserWarning")
def test_a_cluster_class_receives_the_blocks_tls_settings_and_the_client_uses_them():
    credentials = Security.temporary()
    block = DaskCompute(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"processes": False, "dashboard_address": None},
        tls_ca_pem=credentials.tls_ca_file, tls_client_cert_pem=credentials.tls_client_cert,
        tls_client_key_pem=credentials.tls_client_key,
    )
    with open_compute(block, node_count=1, process_count_per_node=1) as client:
        assert client.scheduler.address.startswith("tls://")
        assert client.submit(sum, [1, 2]).result() == 3


def test_tls_settings_for_a_cluster_class_without_security_are_refused():
    credentials = Security.temporary()
    block = DaskCompute(
        cluster_class=f"{__name__}.ClusterWithoutSecurity",
        tls_ca_pem=credentials.tls_ca_file, tls_client_cert_pem=credentials.tls_client_cert,
        tls_client_key_pem=credentials.tls_client_key,
    )
    with pytest.raises(ComputeTargetError, match="takes no 'security' argument"):
        open_compute(block, node_count=1, process_count_per_node=1)
