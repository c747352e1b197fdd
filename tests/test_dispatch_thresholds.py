"""Threshold arithmetic at its boundaries: equal passes, one more aborts."""

from __future__ import annotations

import pytest

from prefect_parallelrun.dispatch.thresholds import FailureCounts, Thresholds, crossed_threshold


def counts(
    failed_items: int = 0, failing: int = 0, failed: int = 0, total: int = 10, all_scheduled=True
) -> FailureCounts:
    return FailureCounts(failed_items, failing, failed, total, all_scheduled)


def limits(error_threshold=-1, allowed_failed_count=None, allowed_failed_percent=None):
    return Thresholds.from_config(error_threshold, allowed_failed_count, allowed_failed_percent)


def test_failed_items_equal_to_error_threshold_pass():
    assert crossed_threshold(limits(error_threshold=5), counts(failed_items=5)) is None


def test_one_more_failed_item_than_error_threshold_aborts_with_the_figures():
    message = crossed_threshold(limits(error_threshold=5), counts(failed_items=6))
    assert message == "error_threshold crossed: 6 failed items > error_threshold 5."


def test_error_threshold_zero_aborts_on_the_first_failed_item():
    assert crossed_threshold(limits(error_threshold=0), counts(failed_items=1))


def test_error_threshold_minus_one_ignores_every_failure():
    assert crossed_threshold(limits(error_threshold=-1), counts(failed_items=10**9)) is None


def test_allowed_failed_count_boundary():
    assert crossed_threshold(limits(allowed_failed_count=2), counts(failing=2)) is None
    message = crossed_threshold(limits(allowed_failed_count=2), counts(failing=3))
    assert "allowed_failed_count crossed: 3 mini-batches" in message
    assert "> allowed_failed_count 2" in message


@pytest.mark.parametrize("value", [None, -1])
def test_allowed_failed_count_none_or_minus_one_never_aborts(value):
    assert crossed_threshold(limits(allowed_failed_count=value), counts(failing=10**6)) is None


def test_allowed_failed_percent_waits_until_every_mini_batch_is_scheduled():
    thresholds = limits(allowed_failed_percent=10)
    assert crossed_threshold(thresholds, counts(failed=5, all_scheduled=False)) is None
    assert crossed_threshold(thresholds, counts(failed=5, all_scheduled=True))


def test_allowed_failed_percent_boundary():
    thresholds = limits(allowed_failed_percent=20)
    assert crossed_threshold(thresholds, counts(failed=2, total=10)) is None
    message = crossed_threshold(thresholds, counts(failed=3, total=10))
    assert message == (
        "allowed_failed_percent crossed: 3 of 10 mini-batches failed (30.00%) > "
        "allowed_failed_percent 20%."
    )


@pytest.mark.parametrize("value", [None, 100])
def test_allowed_failed_percent_none_or_100_never_aborts(value):
    assert crossed_threshold(limits(allowed_failed_percent=value), counts(failed=10)) is None


def test_zero_mini_batches_never_cross_the_percent_threshold():
    assert crossed_threshold(limits(allowed_failed_percent=0), counts(total=0)) is None
