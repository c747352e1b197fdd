"""The settings model: environment variables and prefect.toml set the tunables; a bad value
is refused naming its variable; a job runs by the values of the process that starts it."""

from __future__ import annotations

from pathlib import Path

import pytest

import prefect_parallelrun
from prefect_parallelrun import ParallelRunSettings, get_settings
from tests.jobs import JobBench


def test_every_setting_is_found_from_the_package_top_level():
    assert prefect_parallelrun.get_settings is get_settings
    assert "ParallelRunSettings" in dir(prefect_parallelrun)
    for name, field in ParallelRunSettings.model_fields.items():
        assert field.description, f"setting {name} has no description"


def test_an_environment_variable_sets_a_setting(monkeypatch: pytest.MonkeyPatch):
    assert get_settings().drain_timeout_seconds == 60.0
    monkeypatch.setenv("PREFECT_PARALLELRUN_DRAIN_TIMEOUT_SECONDS", "7.5")
    monkeypatch.setenv("PREFECT_PARALLELRUN_INIT_TIMEOUT_SECONDS", "300")
    settings = get_settings()
    assert settings.drain_timeout_seconds == 7.5
    assert settings.init_timeout_seconds == 300.0


def test_a_prefect_toml_table_sets_a_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    (tmp_path / "prefect.toml").write_text("[parallelrun]\nmax_failed_starts = 5\n")
    monkeypatch.chdir(tmp_path)
    assert get_settings().max_failed_starts == 5
    monkeypatch.setenv("PREFECT_PARALLELRUN_MAX_FAILED_STARTS", "2")  # the variable wins
    assert get_settings().max_failed_starts == 2


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("PREFECT_PARALLELRUN_MAX_FAILED_STARTS", "0", "greater than or equal to 1"),
        ("PREFECT_PARALLELRUN_CANCEL_POLL_SECONDS", "soon", "valid number"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError) as refused:
        get_settings()
    message = str(refused.value)
    assert f"{variable}={value!r}" in message
    assert says in message
    assert "Fix or unset it" in message


@pytest.mark.usefixtures("prefect_server")
def test_a_job_runs_by_the_settings_of_the_process_that_starts_it(
    bench: JobBench, monkeypatch: pytest.MonkeyPatch
):
    # Both values travel with the job to the worker and its entry-script process: init()
    # sleeps far longer than the limit, and the first failed start is already the last.
    source = bench.root / "scripts"
    source.mkdir()
    (source / "slow_init.py").write_text(
        "import time\n\n\ndef init():\n    time.sleep(120)\n\n\n"
        "def run(mini_batch):\n    return list(mini_batch)\n"
    )
    monkeypatch.setenv("PREFECT_PARALLELRUN_INIT_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("PREFECT_PARALLELRUN_MAX_FAILED_STARTS", "1")
    bench.items(["a", "b"])
    result = bench.run(
        source_directory=str(source), entry_script="slow_init.py", process_count_per_node=1
    )
    assert result.status == "Failed"
    assert "init() did not return within init_timeout=2 seconds" in result.message
    assert result.succeeded_items == 0
