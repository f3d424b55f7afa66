"""Steal time from /proc/stat: what bench arms and stage timings report beside their rates."""

from __future__ import annotations

import sys

import pytest

from steca_data.core.cpu import cpu_times, stolen_share


def test_stolen_share_is_the_stolen_part_of_the_ticks_between_readings():
    assert stolen_share((10, 1000), (60, 1200)) == pytest.approx(0.25)
    assert stolen_share((10, 1000), (10, 1000)) is None  # no ticks: no share
    assert stolen_share(None, (10, 1000)) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_cpu_times_reads_this_machine():
    before = cpu_times()
    sum(i * i for i in range(200_000))  # let some ticks pass
    after = cpu_times()
    assert before is not None and after is not None
    assert 0 <= before[0] <= before[1] and after[1] >= before[1]
