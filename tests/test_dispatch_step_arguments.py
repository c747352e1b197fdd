"""ParallelRunStep refuses invalid arguments before anything runs."""

from __future__ import annotations

import pytest

from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep
from prefect_parallelrun.dispatch.arguments import ArgumentsError


def config(**overrides) -> ParallelRunConfig:
    fields = dict(entry_script="score.py", error_threshold=1, output_action="append_row",
                  compute_target="local", node_count=1)
    return ParallelRunConfig(**{**fields, **overrides})


def step(**overrides) -> ParallelRunStep:
    arguments = dict(name="s", parallel_run_config=config(),
                     inputs=[FileDataset.from_files("images/")], output="out/")
    return ParallelRunStep(**{**arguments, **overrides})


def test_keyword_arguments_are_kept_as_strings():
    assert step(arguments=["--model", "m.pkl", "--top=3", "--k", 5]).arguments == [
        "--model", "m.pkl", "--top=3", "--k", "5",
    ]


def test_a_positional_argument_is_refused():
    with pytest.raises(ArgumentsError, match="'m.pkl' is positional"):
        step(arguments=["m.pkl"])


@pytest.mark.parametrize("name", ["--mini_batch_size", "--mini-batch-size", "--node_count=2"])
def test_config_parameter_names_are_reserved(name: str):
    with pytest.raises(ArgumentsError, match="reserved"):
        step(arguments=[name, "3"])


def test_append_row_without_output_is_refused():
    with pytest.raises(ValueError, match="no output folder"):
        step(output=None)


def test_summary_only_may_go_without_output():
    counting = config(output_action="summary_only")
    assert step(parallel_run_config=counting, output=None).output is None


def test_side_inputs_are_refused_with_the_workaround():
    with pytest.raises(NotImplementedError, match="arguments"):
        step(side_inputs=[FileDataset.from_files("labels/")])


def test_a_config_that_is_not_a_parallel_run_config_is_refused():
    with pytest.raises(TypeError, match="ParallelRunConfig"):
        step(parallel_run_config={"entry_script": "score.py"})


def test_no_inputs_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        step(inputs=[])


def test_a_bad_setting_is_refused_by_run_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("PREFECT_PARALLELRUN_MAX_FAILED_STARTS", "0")
    with pytest.raises(ValueError, match="PREFECT_PARALLELRUN_MAX_FAILED_STARTS='0'"):
        step().run()


@pytest.mark.usefixtures("prefect_server")
def test_a_bad_setting_fails_the_flow_run_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
):
    from prefect_parallelrun import parallel_run

    monkeypatch.setenv("PREFECT_PARALLELRUN_MAX_FAILED_STARTS", "0")
    state = parallel_run(
        config=config(), inputs=[FileDataset.from_files("images/")], output="out/",
        return_state=True,
    )
    assert state.is_failed() and state.name == "InvalidSettings"
    assert "PREFECT_PARALLELRUN_MAX_FAILED_STARTS='0'" in (state.message or "")
