"""Installing a job's environment on the workers (DaskCompute(install_environment=True)).

The jobs install `pyjokes`, a small pure-Python package the test environment does not have,
from the package registry into a packages folder of the test's own; the flow's (this test
process's) environment must never gain it.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from prefect_parallelrun import DaskCompute
from prefect_parallelrun.execute.environment import MissingPackagesError
from prefect_parallelrun.execute.environment_install import (
    EnvironmentInstallError,
    environment_on_workers,
)
from prefect_parallelrun.execute.environment_needs import (
    EnvironmentNeeds,
    conda_problems,
    read_environment,
)
from tests.jobs import JobBench

PACKAGE = "pyjokes"
NO_SUCH_PACKAGE = "prefect-parallelrun-no-such-package-xyz"


@pytest.fixture
def packages_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The workers' packages folder: the local cluster's workers inherit this variable."""
    folder = tmp_path / "worker-packages"
    monkeypatch.setenv("PREFECT_PARALLELRUN_PACKAGES_DIR", str(folder))
    assert importlib.util.find_spec(PACKAGE) is None, f"{PACKAGE} must not be installed here"
    yield folder
    assert importlib.util.find_spec(PACKAGE) is None, "the flow's environment gained a package"


def install_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage() for record in caplog.records
        if "nothing to install" in record.getMessage()
        or record.getMessage().startswith("Installed ")
    ]


def run_installing(bench: JobBench, output: Path, environment: list[str] | str):
    config = bench.config(
        entry_script="installed_package.py",
        environment=environment,
        compute_target=DaskCompute(install_environment=True),
        node_count=1,
        process_count_per_node=1,
    )
    return bench.step(config, output=str(output)).run()


def test_a_missing_package_is_installed_for_the_job_and_a_second_job_reuses_it(
    bench: JobBench, prefect_server, packages_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bench.items(["a", "b"])
    with caplog.at_level(logging.INFO):
        first = run_installing(bench, bench.root / "first", [PACKAGE])
    assert first.status == "Completed", first.message
    rows = (bench.root / "first" / "parallel_run_step.txt").read_text().splitlines()
    assert [row.split()[0] for row in rows] == ["item-000.txt", "item-001.txt"]
    assert all(Path(row.split()[2]).parent == packages_dir for row in rows)
    (installed,) = install_messages(caplog)
    assert installed.startswith(f"Installed {PACKAGE}==") and str(packages_dir) in installed

    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = run_installing(bench, bench.root / "second", [PACKAGE])
    assert second.status == "Completed", second.message
    (reused,) = install_messages(caplog)
    assert "already installed" in reused and str(packages_dir) in reused
    assert not any(message.startswith("Installed ") for message in install_messages(caplog))


def test_a_package_that_cannot_be_installed_fails_the_job_before_any_mini_batch(
    bench: JobBench, prefect_server, packages_dir: Path
) -> None:
    bench.items(["a"])
    with pytest.raises(EnvironmentInstallError) as failure:
        run_installing(bench, bench.output, [NO_SUCH_PACKAGE])
    message = str(failure.value)
    assert f"No matching distribution found for {NO_SUCH_PACKAGE}" in message
    assert "No mini-batch was run" in message and "\n" not in message
    assert bench.calls() == {} and not (bench.output / "parallel_run_step.txt").exists()


def test_without_the_opt_in_a_missing_package_fails_fast_naming_it(
    bench: JobBench, prefect_server, packages_dir: Path
) -> None:
    bench.items(["a"])
    config = bench.config(entry_script="installed_package.py", environment=[PACKAGE])
    with pytest.raises(MissingPackagesError, match=f"{PACKAGE} \\(not installed\\)"):
        bench.step(config).run()
    assert not packages_dir.exists()


def test_another_python_or_a_missing_conda_package_fails_the_job_before_installing(
    bench: JobBench, prefect_server, packages_dir: Path
) -> None:
    bench.items(["a"])
    conda = bench.root / "environment.yml"
    conda.write_text(
        "dependencies:\n"
        "  - python=2.7\n"
        "  - cudatoolkit=11.8\n"
        "  - pip:\n"
        f"      - {PACKAGE}\n"
    )
    with pytest.raises(EnvironmentInstallError) as failure:
        run_installing(bench, bench.output, str(conda))
    message = str(failure.value)
    assert "python=2.7 (the workers run Python 3." in message
    assert "cudatoolkit=11.8 (not installed)" in message
    assert "use a worker image that has them, or create the workers' environment with conda" in (
        message
    )
    assert bench.calls() == {} and not any(packages_dir.glob("py*"))


def test_a_worker_that_joins_later_installs_too_and_its_entry_processes_see_the_package(
    bench: JobBench, packages_dir: Path
) -> None:
    said: list[str] = []
    log = logging.getLogger("test-environment-install")
    log.addHandler(CallbackHandler(said.append))
    log.setLevel(logging.INFO)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
        environment_on_workers(client, [PACKAGE], True, "late-joiner", log) as requirements,
    ):
        assert requirements == [PACKAGE]
        cluster.scale(2)
        client.wait_for_workers(2)
        deadline = time.monotonic() + 60
        while len(said) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        found = client.run(_package_seen_by_a_child_process)
    assert said[0].startswith(f"Installed {PACKAGE}==")
    assert "already installed" in said[1] and str(packages_dir) in said[1]
    assert len(found) == 2 and all(Path(folder).parent == packages_dir for folder in found.values())


class CallbackHandler(logging.Handler):
    def __init__(self, callback) -> None:
        super().__init__()
        self.callback = callback

    def emit(self, record: logging.LogRecord) -> None:
        self.callback(record.getMessage())


def _package_seen_by_a_child_process() -> str:
    # As an entry-script process is started: a child of the worker, with its environment.
    import os
    import subprocess

    code = f"import {PACKAGE}, os; print(os.path.dirname(os.path.dirname({PACKAGE}.__file__)))"
    return subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True,
        check=True,
    ).stdout.strip()


def test_a_conda_yaml_gives_pip_requirements_conda_packages_and_the_python(
    tmp_path: Path,
) -> None:
    conda = tmp_path / "environment.yml"
    conda.write_text(
        "dependencies:\n"
        "  - python=3.11\n"
        "  - conda-forge::cudatoolkit=11.8\n"
        "  - pip\n"
        "  - pip:\n"
        f"      - {PACKAGE}\n"
    )
    assert read_environment(conda) == EnvironmentNeeds(
        pip=[PACKAGE], conda=["conda-forge::cudatoolkit=11.8"], python="=3.11"
    )


def test_conda_only_packages_and_another_python_are_named_as_problems() -> None:
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert conda_problems(EnvironmentNeeds(conda=["psutil"], python=f"={this}")) == []
    assert conda_problems(EnvironmentNeeds(python=f">={this}")) == []
    problems = conda_problems(EnvironmentNeeds(conda=["cudatoolkit=11.8"], python="=2.7"))
    assert problems[0].startswith("python=2.7 (the workers run Python 3.")
    assert problems[1] == "cudatoolkit=11.8 (not installed)"
