"""Files written by Azure ML's own ParallelRunConfig.save_to_yaml load here, and run.

The YAML texts below are what azureml-pipeline-core's `save_to_yaml` writes (SDK v1), byte for
byte, apart from the names of this test's folders: `compute_target_name`, the serialized
Environment with its comments, `partition_keys:` empty, `allowed_failed_*` absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from prefect.settings import PREFECT_API_URL

from prefect_parallelrun import ParallelRunConfig
from prefect_parallelrun.config.azure_environment import AzureEnvironmentWarning
from tests.jobs import SCRIPTS, JobBench

# ParallelRunConfig(environment=<conda and pip packages, two variables, a base image>,
#     compute_target="cpu-cluster", mini_batch_size="5", environment_variables={...}, ...)
AZURE_WRITTEN = """\
parallel_run_config:
  mini_batch_size: 5
  partition_keys:
  error_threshold: 10
  output_action: append_row
  logging_level: DEBUG
  compute_target_name: cpu-cluster
  node_count: 2
  process_count_per_node: 2
  entry_script: score.py
  source_directory: scripts
  description: score images
  run_invocation_timeout: 120
  run_max_try: 4
  append_row_file_name: scores.txt
  environment:
    name: batch-env
    version:
    environmentVariables:
      MODEL_NAME: resnet
      SHARED: from-env
    python:
      userManagedDependencies: false
      interpreterPath: python
      condaDependenciesFile:
      baseCondaEnvironment:
      condaDependencies:
# Conda environment specification. The dependencies defined in this file will
# be automatically provisioned for runs with userManagedDependencies=False.

# Details about the Conda environment file format:
# https://conda.io/docs/user-guide/tasks/manage-environments.html#create-env-file-manually

        name: project_environment
        dependencies:
  # The python interpreter version.
  # Currently Azure ML only supports 3.8 and later.
        - python=3.8

        - pip:
          - --find-links https://pypi.python.org/simple/index.html
          - --extra-index-url https://pypi.python.org/simple
          - azureml-core
          - azureml-dataset-runtime[fuse,pandas]
          - pillow>=9
        - scikit-learn=1.0.2
        - pandas
        channels:
        - anaconda
        - conda-forge
    docker:
      enabled: false
      baseImage: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04
      baseDockerfile:
      buildContext:
      sharedVolumes: true
      shmSize: 2g
      arguments: []
      baseImageRegistry:
        address:
        username:
        password:
        registryIdentity:
      platform:
        os: Linux
        architecture: amd64
    spark:
      repositories: []
      packages: []
      precachePackages: true
    databricks:
      mavenLibraries: []
      pypiLibraries: []
      rcranLibraries: []
      jarLibraries: []
      eggLibraries: []
    r:
    inferencingStackVersion:
    assetId:
  environment_variables:
    SHARED: explicit
    TOKEN: abc
"""

# ParallelRunConfig(environment=Environment("plain"), compute_target="local",
#     partition_keys=["user"], ...): Azure's default environment, untouched.
AZURE_WRITTEN_PARTITIONED = """\
parallel_run_config:
  mini_batch_size:
  partition_keys:
  - user
  error_threshold: -1
  output_action: summary_only
  logging_level: INFO
  compute_target_name: local
  node_count: 1
  process_count_per_node:
  entry_script: score.py
  source_directory:
  description:
  run_invocation_timeout: 60
  run_max_try: 3
  append_row_file_name:
  environment:
    name: plain
    version:
    environmentVariables:
      EXAMPLE_ENV_VAR: EXAMPLE_VALUE
    python:
      userManagedDependencies: false
      interpreterPath: python
      condaDependenciesFile:
      baseCondaEnvironment:
      condaDependencies:
# Conda environment specification. The dependencies defined in this file will
# be automatically provisioned for runs with userManagedDependencies=False.

# Details about the Conda environment file format:
# https://conda.io/docs/user-guide/tasks/manage-environments.html#create-env-file-manually

        name: project_environment
        dependencies:
  # The python interpreter version.
  # Currently Azure ML only supports 3.8 and later.
        - python=3.8.13

        - pip:
    # Required packages for AzureML execution, history, and data preparation.
          - azureml-defaults

        channels:
        - anaconda
        - conda-forge
    docker:
      enabled: false
      baseImage: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20251130.v1
      baseDockerfile:
      buildContext:
      sharedVolumes: true
      shmSize: 2g
      arguments: []
      baseImageRegistry:
        address:
        username:
        password:
        registryIdentity:
      platform:
        os: Linux
        architecture: amd64
    spark:
      repositories: []
      packages: []
      precachePackages: true
    databricks:
      mavenLibraries: []
      pypiLibraries: []
      rcranLibraries: []
      jarLibraries: []
      eggLibraries: []
    r:
    inferencingStackVersion:
    assetId:
  environment_variables: {}
"""

# A job for tests/scripts/job_behaviours.py; SCRIPTS_DIR and CALLS_FILE_PATH are filled in.
AZURE_WRITTEN_JOB = """\
parallel_run_config:
  mini_batch_size: 2
  partition_keys:
  error_threshold: -1
  output_action: append_row
  logging_level: INFO
  compute_target_name: local
  node_count: 1
  process_count_per_node: 1
  entry_script: job_behaviours.py
  source_directory: SCRIPTS_DIR
  description:
  run_invocation_timeout: 60
  run_max_try: 1
  append_row_file_name:
  environment:
    name: job-env
    version:
    environmentVariables:
      CALLS_FILE: CALLS_FILE_PATH
    python:
      userManagedDependencies: false
      interpreterPath: python
      condaDependenciesFile:
      baseCondaEnvironment:
      condaDependencies:
# Conda environment specification. The dependencies defined in this file will
# be automatically provisioned for runs with userManagedDependencies=False.

# Details about the Conda environment file format:
# https://conda.io/docs/user-guide/tasks/manage-environments.html#create-env-file-manually

        name: project_environment
        dependencies:
  # The python interpreter version.
  # Currently Azure ML only supports 3.8 and later.
        - python=3.11

        - pip:
          - --find-links https://pypi.python.org/simple/index.html
          - --extra-index-url https://pypi.python.org/simple
          - azureml-defaults
          - pyyaml>=5
        - packaging
        channels:
        - anaconda
        - conda-forge
    docker:
      enabled: false
      baseImage: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20251130.v1
      baseDockerfile:
      buildContext:
      sharedVolumes: true
      shmSize: 2g
      arguments: []
      baseImageRegistry:
        address:
        username:
        password:
        registryIdentity:
      platform:
        os: Linux
        architecture: amd64
    spark:
      repositories: []
      packages: []
      precachePackages: true
    databricks:
      mavenLibraries: []
      pypiLibraries: []
      rcranLibraries: []
      jarLibraries: []
      eggLibraries: []
    r:
    inferencingStackVersion:
    assetId:
  environment_variables: {}
"""

# Environment.from_conda_specification(...).save_to_directory(folder): the definition file.
AZURE_ENVIRONMENT_JSON = """\
{
    "name": "from-conda",
    "version": null,
    "environmentVariables": {
        "EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"
    },
    "python": {
        "userManagedDependencies": true,
        "interpreterPath": "python",
        "condaDependenciesFile": null,
        "baseCondaEnvironment": null
    },
    "docker": {
        "enabled": false,
        "baseImage": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20251130.v1",
        "baseDockerfile": null,
        "buildContext": null,
        "sharedVolumes": true,
        "shmSize": "2g",
        "arguments": [],
        "baseImageRegistry": {
            "address": null,
            "username": null,
            "password": null,
            "registryIdentity": null
        },
        "platform": {
            "os": "Linux",
            "architecture": "amd64"
        }
    },
    "spark": {
        "repositories": [],
        "packages": [],
        "precachePackages": true
    },
    "databricks": {
        "mavenLibraries": [],
        "pypiLibraries": [],
        "rcranLibraries": [],
        "jarLibraries": [],
        "eggLibraries": []
    },
    "r": null,
    "inferencingStackVersion": null,
    "assetId": null
}
"""

CONDA_YAML = """\
name: from-conda
channels:
- conda-forge
dependencies:
- python=3.9
- numpy>=1.20
- pip:
  - requests
"""


def write(folder: Path, text: str, name: str = "azure.yml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def load(path: Path) -> ParallelRunConfig:
    """Load, with Azure ML's ignored sections' warnings silenced (tested on their own)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AzureEnvironmentWarning)
        return ParallelRunConfig.load_yaml(None, path)


def with_environment(environment_yaml: str) -> str:
    """AZURE_WRITTEN with its `environment:` value replaced by `environment_yaml`."""
    start = AZURE_WRITTEN.index("  environment:\n")
    end = AZURE_WRITTEN.index("  environment_variables:\n")
    return AZURE_WRITTEN[:start] + f"  environment: {environment_yaml}\n" + AZURE_WRITTEN[end:]


def test_every_key_azure_ml_writes_is_read(tmp_path: Path):
    config = load(write(tmp_path, AZURE_WRITTEN))
    assert config.compute_target == "cpu-cluster"
    assert config.mini_batch_size == 5
    assert config.partition_keys is None
    assert (config.error_threshold, config.output_action, config.logging_level) == (
        10, "append_row", "DEBUG")
    assert (config.node_count, config.process_count_per_node) == (2, 2)
    assert (config.entry_script, config.source_directory) == ("score.py", "scripts")
    assert config.description == "score images"
    assert (config.run_invocation_timeout, config.run_max_try) == (120, 4)
    assert config.append_row_file_name == "scores.txt"
    assert config.allowed_failed_count is None and config.allowed_failed_percent is None


def test_conda_and_pip_packages_become_the_requirements_list(tmp_path: Path):
    config = load(write(tmp_path, AZURE_WRITTEN))
    # python, pip options, channels and Azure ML's own runtime packages are left out.
    assert config.environment == ["pillow>=9", "scikit-learn==1.0.2.*", "pandas"]


def test_environment_variables_join_and_explicit_ones_win(tmp_path: Path):
    config = load(write(tmp_path, AZURE_WRITTEN))
    assert config.secret_environment_variables() == {
        "MODEL_NAME": "resnet", "SHARED": "explicit", "TOKEN": "abc",
    }


def test_the_docker_section_is_ignored_with_one_warning_saying_why(tmp_path: Path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ParallelRunConfig.load_yaml(None, write(tmp_path, AZURE_WRITTEN))
    ours = [w for w in caught if issubclass(w.category, AzureEnvironmentWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    message = str(ours[0].message)
    assert "docker" in message and "ignored" in message
    assert "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04" in message
    assert "Dask workers' own Python environment" in message
    assert ours[0].filename == __file__  # it points at the load_yaml call


def test_partition_keys_local_and_azure_default_environment(tmp_path: Path):
    config = load(write(tmp_path, AZURE_WRITTEN_PARTITIONED))
    assert config.compute_target == "local"
    assert config.partition_keys == ["user"]
    assert config.mini_batch_size is None
    # Azure's default environment asks only for python and azureml-defaults: nothing here.
    assert config.environment is None
    assert config.secret_environment_variables() == {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}


def test_a_loaded_azure_file_saves_and_loads_back_equal_in_our_layout(tmp_path: Path):
    config = load(write(tmp_path, AZURE_WRITTEN))
    config.save_to_yaml(tmp_path / "ours.yml")
    document = yaml.safe_load((tmp_path / "ours.yml").read_text())["parallel_run_config"]
    assert "compute_target_name" not in document and document["compute_target"] == "cpu-cluster"
    assert ParallelRunConfig.load_yaml(None, tmp_path / "ours.yml") == config


@pytest.mark.parametrize(
    ("conda_entry", "requirement"),
    [
        ("numpy", "numpy"),
        ("numpy=1.24", "numpy==1.24.*"),
        ("numpy=1.24.3=py311h64a7726_0", "numpy==1.24.3.*"),
        ("numpy==1.24.3", "numpy==1.24.3"),
        ("numpy>=1.20,<2", "numpy<2,>=1.20"),
        ("numpy 1.24.*", "numpy==1.24.*"),
        ("numpy=1.2*", "numpy==1.2.*"),
        ("conda-forge::numpy>=1.20", "numpy>=1.20"),
        ("numpy[version='>=1.20']", "numpy"),
    ],
)
def test_conda_package_specs_become_pip_requirements(
    tmp_path: Path, conda_entry: str, requirement: str
):
    environment = (
        "\n    python:\n      condaDependencies:\n        dependencies:\n"
        f"        - python=3.11\n        - \"{conda_entry}\"\n"
    )
    config = load(write(tmp_path, with_environment(environment)))
    assert config.environment == [requirement]


def test_a_user_managed_environment_requires_nothing(tmp_path: Path):
    text = AZURE_WRITTEN.replace("userManagedDependencies: false", "userManagedDependencies: true")
    assert load(write(tmp_path, text)).environment is None


@pytest.mark.parametrize("file_name", ["env.yml", "env.json"])
def test_environment_may_be_a_path_to_an_azure_environment_file_relative_to_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_name: str
):
    environment = yaml.safe_load(AZURE_WRITTEN)["parallel_run_config"]["environment"]
    folder = tmp_path / "work"
    folder.mkdir()
    text = json.dumps(environment) if file_name.endswith(".json") else yaml.safe_dump(environment)
    (folder / file_name).write_text(text)
    monkeypatch.chdir(folder)
    config = load(write(tmp_path, with_environment(file_name)))
    assert config.environment == ["pillow>=9", "scikit-learn==1.0.2.*", "pandas"]
    assert config.secret_environment_variables()["MODEL_NAME"] == "resnet"


def test_a_conda_yaml_path_stays_a_path_for_the_job_to_read(tmp_path: Path):
    (tmp_path / "conda.yml").write_text(CONDA_YAML)
    path = str(tmp_path / "conda.yml")
    assert load(write(tmp_path, with_environment(path))).environment == path


def test_an_environment_saved_to_a_directory_loads(tmp_path: Path):
    folder = tmp_path / "parallel_run_env"
    folder.mkdir()
    (folder / "azureml_environment.json").write_text(
        AZURE_ENVIRONMENT_JSON.replace('"userManagedDependencies": true',
                                       '"userManagedDependencies": false')
    )
    (folder / "conda_dependencies.yml").write_text(CONDA_YAML)
    config = load(write(tmp_path, with_environment(str(folder))))
    assert config.environment == ["numpy>=1.20", "requests"]


def test_the_older_sdk_layout_with_environment_dir_path_loads(tmp_path: Path):
    folder = tmp_path / "parallel_run_env"
    folder.mkdir()
    (folder / "azureml_environment.json").write_text(AZURE_ENVIRONMENT_JSON)
    (folder / "conda_dependencies.yml").write_text(CONDA_YAML)
    # The key order of azureml-contrib-pipeline-steps' save_to_yaml.
    text = (
        "parallel_run_config:\n  input_format: file\n  mini_batch_size: '5'\n"
        "  error_threshold: 10\n  output_action: append_row\n  logging_level: INFO\n"
        "  compute_target_name: local\n  node_count: 1\n  process_count_per_node:\n"
        "  entry_script: score.py\n  source_directory:\n  description:\n"
        "  run_invocation_timeout: 60\n  append_row_file_name:\n"
        f"  environment_name: from-conda\n  environment_dir_path: {folder}\n"
    )
    config = load(write(tmp_path, text))
    assert (config.compute_target, config.mini_batch_size) == ("local", "5")
    assert config.environment is None  # userManagedDependencies: true
    assert config.secret_environment_variables() == {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}


@pytest.mark.parametrize(
    ("old", "new", "named", "form"),
    [
        ("compute_target_name: cpu-cluster", "compute_target_name: 5", "compute_target_name",
         "saved DaskCompute block"),
        ("compute_target_name: cpu-cluster",
         "compute_target_name: cpu-cluster\n  compute_target: local",
         "compute_target_name", "keep one"),
        ("node_count: 2", "node_count: two", "node_count", "greater than 0"),
        ("entry_script: score.py", "entry_script: [score.py]", "entry_script", "as a string"),
        ("  entry_script: score.py\n", "", "entry_script", "is missing"),
        ("mini_batch_size: 5", "mini_batch_size: 5 TB", "mini_batch_size", "1 GB"),
        ("description: score images", "description: {text: x}", "description", "a string"),
        ("MODEL_NAME: resnet", "MODEL_NAME: 7", "environmentVariables", "MODEL_NAME"),
        ("        - pandas\n", "        - {conda: pandas}\n", "condaDependencies",
         "conda package spec"),
        ("    python:\n", "    jupyter: {}\n    python:\n", "environment", "jupyter"),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_key_and_its_form(
    tmp_path: Path, old: str, new: str, named: str, form: str
):
    assert old in AZURE_WRITTEN
    with pytest.raises(ValueError) as raised:
        load(write(tmp_path, AZURE_WRITTEN.replace(old, new, 1)))
    message = str(raised.value)
    assert named in message and form in message, message
    assert "validation error" not in message and "pydantic" not in message, message
    assert "\n" not in message, message


def test_a_registered_environment_reference_says_to_give_its_packages(tmp_path: Path):
    text = with_environment("{name: batch-env, version: '3'}")
    with pytest.raises(ValueError, match="registered Azure ML environment 'batch-env'.*pip"):
        load(write(tmp_path, text))


def test_secret_values_stay_out_of_messages(tmp_path: Path):
    text = AZURE_WRITTEN.replace("TOKEN: abc", "TOKEN: [abc]")
    with pytest.raises(ValueError, match="environment_variables") as raised:
        load(write(tmp_path, text))
    assert "abc" not in str(raised.value)


def cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prefect_parallelrun.cli", *arguments],
        capture_output=True, text=True, timeout=300, env=env,
    )


def test_validate_reads_an_azure_written_file(tmp_path: Path):
    completed = cli("validate", str(write(tmp_path, AZURE_WRITTEN)))
    assert completed.returncode == 0, completed.stderr
    assert "compute_target: cpu-cluster" in completed.stdout
    assert "environment: ['pillow>=9', 'scikit-learn==1.0.2.*', 'pandas']" in completed.stdout
    assert "abc" not in completed.stdout
    assert completed.stderr.count("AzureEnvironmentWarning") == 1, completed.stderr
    assert "docker section" in completed.stderr


def test_validate_names_the_bad_key_of_an_azure_written_file(tmp_path: Path):
    completed = cli("validate", str(write(tmp_path, AZURE_WRITTEN.replace(
        "run_max_try: 4", "run_max_try: 0"))))
    assert completed.returncode == 2
    assert "run_max_try must be an integer greater than 0" in completed.stderr


def job_yaml(bench: JobBench, calls_file: Path, **replacements: str) -> Path:
    text = AZURE_WRITTEN_JOB.replace("SCRIPTS_DIR", str(SCRIPTS))
    text = text.replace("CALLS_FILE_PATH", str(calls_file))
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    return write(bench.root, text)


@pytest.mark.usefixtures("prefect_server")
def test_run_does_a_job_from_an_azure_written_file(bench: JobBench):
    bench.items(["ok", "ok", "ok"])
    calls_file = bench.root / "calls-from-azure-environment.txt"
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    completed = cli(
        "run", str(job_yaml(bench, calls_file)), "--input", str(bench.inputs),
        "--output", str(bench.output), "--no-reuse", env=environment,
    )
    assert completed.returncode == 0, completed.stderr
    assert bench.rows() == ["item-000.txt ok", "item-001.txt ok", "item-002.txt ok"]
    # The Azure Environment's environmentVariables reached the entry script.
    called = sorted(calls_file.read_text().split())
    assert called == ["item-000.txt", "item-001.txt", "item-002.txt"]


@pytest.mark.usefixtures("prefect_server")
def test_run_checks_the_conda_packages_of_an_azure_environment(bench: JobBench):
    bench.items(["ok"])
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    config = job_yaml(bench, bench.root / "calls.txt",
                      **{"        - packaging\n": "        - no-such-package-here=1.0\n"})
    completed = cli(
        "run", str(config), "--input", str(bench.inputs), "--output", str(bench.output),
        "--no-reuse", env=environment,
    )
    assert completed.returncode != 0
    assert "no-such-package-here==1.0.*" in completed.stderr


@pytest.mark.usefixtures("prefect_server")
def test_run_with_an_unsaved_compute_target_name_says_how_to_save_one(bench: JobBench):
    bench.items(["ok"])
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    config = job_yaml(bench, bench.root / "calls.txt",
                      **{"compute_target_name: local": "compute_target_name: cpu-cluster"})
    completed = cli(
        "run", str(config), "--input", str(bench.inputs), "--output", str(bench.output),
        "--no-reuse", env=environment,
    )
    assert completed.returncode == 2  # a config error, said before any flow run starts
    assert "'cpu-cluster'" in completed.stderr
    assert "DaskCompute" in completed.stderr and ".save(" in completed.stderr
    assert "Traceback" not in completed.stderr and "Beginning flow run" not in completed.stderr
