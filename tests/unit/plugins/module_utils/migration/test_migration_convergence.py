# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the copy-round stop rules (module_utils/migration/convergence.py)."""

from __future__ import annotations

import pytest

from ansible_collections.podmig.live.plugins.module_utils.migration.convergence import (
    DEFAULT_RULES,
    decide,
    rules_with_defaults,
)

MiB = 1024 * 1024


def rounds(*dirty_mib, duration_s=1.0):
    return [{"dirty_bytes": int(d * MiB), "duration_s": duration_s} for d in dirty_mib]


# --------------------------------------------------------------------------- rules_with_defaults


def test_defaults_when_no_rules():
    assert rules_with_defaults(None) == DEFAULT_RULES
    assert rules_with_defaults({}) == DEFAULT_RULES


def test_given_rule_overrides_default_and_defaults_are_not_mutated():
    merged = rules_with_defaults({"max_rounds": 9, "max_growth": 1.5})
    assert merged["max_rounds"] == 9
    assert merged["max_growth"] == 1.5
    assert merged["min_rounds"] == DEFAULT_RULES["min_rounds"]
    assert DEFAULT_RULES["max_rounds"] == 5
    assert merged is not DEFAULT_RULES


def test_none_value_keeps_the_default():
    merged = rules_with_defaults({"max_rounds": None, "time_budget_s": None, "min_rounds": 2})
    assert merged["max_rounds"] == DEFAULT_RULES["max_rounds"]
    assert merged["time_budget_s"] == DEFAULT_RULES["time_budget_s"]
    assert merged["min_rounds"] == 2


def test_unknown_rule_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match=r"unknown convergence rule 'max_round'") as info:
        rules_with_defaults({"max_round": 3})
    for name in DEFAULT_RULES:
        assert name in str(info.value)


def test_decide_refuses_unknown_rule():
    with pytest.raises(ValueError, match="unknown convergence rule"):
        decide(rounds(100), {"threshold": 1})


# --------------------------------------------------------------------------- decide


def test_no_round_yet_goes_on():
    result = decide([])
    assert result == {"rounds": 0, "elapsed_s": 0.0, "stop": False, "reason": "no round yet"}


def test_shrinking_dirty_set_goes_on():
    result = decide(rounds(200, 100))
    assert result["stop"] is False
    assert result["rounds"] == 2
    assert result["elapsed_s"] == 2.0
    assert result["reason"] == "dirty set %d B, still shrinking" % (100 * MiB)


def test_first_big_round_goes_on():
    result = decide(rounds(500))
    assert result["stop"] is False
    assert "still shrinking" in result["reason"]


def test_max_rounds_stops_even_when_still_shrinking():
    result = decide(rounds(500, 400, 300), {"max_rounds": 3})
    assert result["stop"] is True
    assert result["reason"] == "reached max_rounds=3"
    # one round fewer goes on
    assert decide(rounds(500, 400), {"max_rounds": 3})["stop"] is False


def test_max_rounds_wins_over_min_rounds():
    result = decide(rounds(500, 400), {"max_rounds": 2, "min_rounds": 4})
    assert result["stop"] is True
    assert "max_rounds=2" in result["reason"]


def test_time_budget_stops():
    result = decide(rounds(500, 400, duration_s=5.5), {"time_budget_s": 10})
    assert result["stop"] is True
    assert result["elapsed_s"] == 11.0
    assert result["reason"] == "time budget of 10.0 s used (11.0 s)"


def test_time_budget_not_yet_used_goes_on():
    result = decide(rounds(500, 400, duration_s=4.0), {"time_budget_s": 10})
    assert result["stop"] is False


def test_time_budget_exactly_used_stops():
    assert decide(rounds(500, 400, duration_s=5.0), {"time_budget_s": 10})["stop"] is True


def test_elapsed_is_rounded_and_missing_duration_counts_zero():
    result = decide([{"dirty_bytes": 100 * MiB, "duration_s": 0.12345}, {"dirty_bytes": 90 * MiB}])
    assert result["elapsed_s"] == 0.123


def test_below_threshold_stops():
    result = decide(rounds(100, 4))
    assert result["stop"] is True
    assert result["reason"] == "dirty set %d B is below the threshold %d B" % (4 * MiB, 8 * MiB)


def test_threshold_is_inclusive():
    assert decide([{"dirty_bytes": 8 * MiB, "duration_s": 1}])["stop"] is True
    assert decide([{"dirty_bytes": 8 * MiB + 1, "duration_s": 1}])["stop"] is False


def test_custom_threshold():
    assert decide(rounds(100, 30), {"dirty_bytes_threshold": 32 * MiB})["stop"] is True
    assert decide(rounds(100, 30), {"dirty_bytes_threshold": 16 * MiB})["stop"] is False


def test_min_rounds_holds_back_the_threshold_stop():
    result = decide(rounds(1), {"min_rounds": 2})
    assert result["stop"] is False
    assert result["reason"] == "min_rounds=2 not reached"
    assert decide(rounds(1, 1), {"min_rounds": 2})["stop"] is True


def test_min_rounds_holds_back_the_growth_stop():
    assert decide(rounds(100, 200), {"min_rounds": 3})["stop"] is False
    assert decide(rounds(100, 200, 300), {"min_rounds": 3})["stop"] is True


def test_growth_stops():
    result = decide(rounds(100, 150))
    assert result["stop"] is True
    assert result["reason"] == "dirty set stopped shrinking (%d B after %d B)" % (150 * MiB, 100 * MiB)


def test_growth_compares_with_the_previous_round_only():
    # 300 -> 100 -> 120: grew against the previous round, not against the first
    assert decide(rounds(300, 100, 120))["stop"] is True
    # 100 -> 300 -> 200: shrinking against the previous round
    assert decide(rounds(100, 300, 200))["stop"] is False


def test_max_growth_factor_tolerates_some_growth():
    assert decide(rounds(100, 150), {"max_growth": 2.0})["stop"] is False
    assert decide(rounds(100, 250), {"max_growth": 2.0})["stop"] is True


def test_equal_dirty_set_stops_with_the_default_factor():
    # An equal round means the rounds no longer converge: stop rather than copy the same again.
    result = decide(rounds(100, 100))
    assert result["stop"] is True and "stopped shrinking" in result["reason"]


def test_numeric_strings_from_the_command_line_are_accepted():
    result = decide(rounds(100, 90, 80), {"max_rounds": "3"})
    assert result["stop"] is True and "max_rounds=3" in result["reason"]


def test_misspelled_rule_set_to_none_is_refused():
    with pytest.raises(ValueError, match="unknown convergence rule 'max_round'"):
        decide(rounds(100), {"max_round": None})


def test_previous_round_of_zero_bytes_is_not_growth():
    result = decide([{"dirty_bytes": 0, "duration_s": 1}, {"dirty_bytes": 100 * MiB, "duration_s": 1}],
                    {"min_rounds": 2, "dirty_bytes_threshold": 0})
    assert result["stop"] is False


def test_threshold_checked_before_growth():
    # grew (1 -> 2 MiB) but both are under the threshold: the reason is the threshold
    result = decide(rounds(1, 2))
    assert result["stop"] is True
    assert "below the threshold" in result["reason"]


def test_rule_precedence_max_rounds_before_time_budget():
    result = decide(rounds(500, 400, duration_s=100), {"max_rounds": 2, "time_budget_s": 1})
    assert "max_rounds" in result["reason"]
