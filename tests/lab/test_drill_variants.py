"""The drill's command line: Scenario A's variants, refused for the scenarios that have none."""

from __future__ import annotations

import pytest

from ragops_lab.__main__ import parse_args
from ragops_lab.drills import shard_recovery


@pytest.mark.parametrize("variant", shard_recovery.VARIANTS)
def test_scenario_a_takes_its_variants(variant: str) -> None:
    args = parse_args(["drill", "--variant", variant])
    assert (args.scenario, args.variant) == ("a", variant)


def test_without_a_variant_the_drill_restores() -> None:
    assert parse_args(["drill"]).variant is None


@pytest.mark.parametrize("argv", [["drill", "--scenario", "c", "--variant", "reopen"],
                                  ["drill", "--variant", "no-such-variant"]])
def test_a_variant_the_scenario_lacks_is_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert "--variant" in capsys.readouterr().err

