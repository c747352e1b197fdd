"""Reading a job's environment into pip requirements, and checking them against this Python."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefect_parallelrun.execute.environment import (
    MissingPackagesError,
    missing_requirements,
    read_requirements,
)


def test_no_environment_requires_nothing() -> None:
    assert read_requirements(None) == []


def test_a_list_is_taken_as_pip_requirements() -> None:
    assert read_requirements(["pandas>=2", "psutil"]) == ["pandas>=2", "psutil"]


def test_a_requirements_file_is_read_with_includes_and_without_options(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("psutil>=5\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# models\n"
        "--index-url https://example.org/simple\n"
        "-r base.txt\n"
        "pandas >= 2.0  # tables\n"
        "numpy==1.26.4 --hash=sha256:abc\n"
        "-e ./local-package\n"
        "git+https://example.org/repo.git\n"
        "scikit-learn; python_version < '3'\n"
    )
    assert read_requirements(str(requirements)) == [
        "psutil>=5",
        "pandas >= 2.0",
        "numpy==1.26.4",
        "scikit-learn; python_version < '3'",
    ]


def test_a_conda_yaml_gives_its_pip_list(tmp_path: Path) -> None:
    conda = tmp_path / "environment.yml"
    conda.write_text(
        "name: scoring\n"
        "dependencies:\n"
        "  - python=3.11\n"
        "  - cudatoolkit=11.8\n"
        "  - pip\n"
        "  - pip:\n"
        "      - pandas>=2\n"
        "      - psutil\n"
    )
    assert read_requirements(conda) == ["pandas>=2", "psutil"]


def test_missing_and_too_old_packages_are_named_with_what_is_installed() -> None:
    problems = missing_requirements(
        ["psutil", "surely-not-a-package-xyz", "pandas>=999", "Surely_Not; python_version < '3'"]
    )
    assert problems[0] == "surely-not-a-package-xyz (not installed)"
    assert problems[1].startswith("pandas>=999 (installed: ")
    assert len(problems) == 2


def test_the_error_names_each_worker_and_how_to_fix_it() -> None:
    error = MissingPackagesError({"tcp://10.0.0.5:4000": ["torch>=2 (not installed)"]})
    assert "on tcp://10.0.0.5:4000: torch>=2 (not installed)" in str(error)
    assert "pip install 'torch>=2'" in str(error)


def test_a_conda_yaml_whose_dependencies_are_not_a_list_is_refused(tmp_path: Path) -> None:
    conda = tmp_path / "environment.yaml"
    conda.write_text("dependencies: pandas\n")
    with pytest.raises(ValueError, match="'dependencies' must be a list"):
        read_requirements(conda)
