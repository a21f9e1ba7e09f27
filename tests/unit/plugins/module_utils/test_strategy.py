# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the strategy choice over criu_info facts, for kernels with and
without soft-dirty tracking, userfaultfd and a large enough pipe-max-size."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.podmig.live.plugins.module_utils.strategy import (
    DEFAULT_AUTO_ORDER,
    LAZY_MIN_PIPE_MAX_SIZE,
    RISKS,
    STRATEGIES,
    choose_strategy,
    node_strategies,
)

DIRTY_OFF = "Dirty tracking is OFF. Memory snapshot will not work."
UFFD_OFF = "UFFD is not supported"


def facts(hostname="node", soft_dirty=True, uffd=True, pipe_max=LAZY_MIN_PIPE_MAX_SIZE, check_ok=True,
          check_message="Looks good."):
    return {
        "hostname": hostname,
        "pipe_max_size": pipe_max,
        "check": {"ok": check_ok, "message": check_message},
        "features": {
            "mem_dirty_track": {"supported": soft_dirty, "message": "" if soft_dirty else DIRTY_OFF},
            "uffd": {"supported": uffd, "message": ""},
            "uffd_noncoop": {"supported": uffd, "message": "uffd-noncoop is supported" if uffd else UFFD_OFF},
        },
    }


# This project's machines: no soft-dirty, userfaultfd works, pipe-max-size raised by the criu role.
HERE = facts(soft_dirty=False)
FULL = facts()


# --------------------------------------------------------------------------- node_strategies


def test_node_with_every_feature_supports_everything():
    result = node_strategies(FULL)
    assert set(result) == set(STRATEGIES)
    assert all(entry["supported"] for entry in result.values())
    assert "soft-dirty" in result["precopy"]["reason"]
    assert "uffd-noncoop" in result["postcopy"]["reason"]


def test_node_without_soft_dirty_refuses_precopy_only():
    result = node_strategies(HERE)
    assert result["precopy"]["supported"] is False
    assert "CONFIG_MEM_SOFT_DIRTY" in result["precopy"]["reason"]
    assert "mem_dirty_track" in result["precopy"]["reason"]
    assert DIRTY_OFF in result["precopy"]["reason"]
    assert result["cold"]["supported"] and result["delta"]["supported"] and result["postcopy"]["supported"]


def test_node_without_uffd_refuses_postcopy():
    result = node_strategies(facts(uffd=False))
    assert result["postcopy"]["supported"] is False
    assert "uffd-noncoop" in result["postcopy"]["reason"]
    assert UFFD_OFF in result["postcopy"]["reason"]
    assert result["precopy"]["supported"] is True


def test_node_missing_feature_entries_count_as_unsupported():
    result = node_strategies({"check": {"ok": True}, "features": {}, "pipe_max_size": 2**30})
    assert result["precopy"]["supported"] is False
    assert result["precopy"]["reason"].endswith("(criu check --feature mem_dirty_track: not supported)")
    assert result["postcopy"]["supported"] is False
    assert result["postcopy"]["reason"].endswith("(criu check --feature uffd-noncoop: not supported)")
    assert result["cold"]["supported"] is True


@pytest.mark.parametrize("pipe_max", [0, None, 1048576, LAZY_MIN_PIPE_MAX_SIZE - 1])
def test_node_low_pipe_max_size_refuses_postcopy(pipe_max):
    result = node_strategies(facts(pipe_max=pipe_max))
    assert result["postcopy"]["supported"] is False
    reason = result["postcopy"]["reason"]
    assert "fs.pipe-max-size >= %d" % LAZY_MIN_PIPE_MAX_SIZE in reason
    assert "it is %d" % int(pipe_max or 0) in reason
    assert result["precopy"]["supported"] is True


def test_node_pipe_max_size_exactly_minimum_is_enough():
    assert node_strategies(facts(pipe_max=LAZY_MIN_PIPE_MAX_SIZE))["postcopy"]["supported"] is True


def test_node_failed_check_refuses_everything_with_hostname():
    result = node_strategies(facts(hostname="node7", check_ok=False, check_message="CRIU 3.15 is older than 4.0"))
    assert set(result) == set(STRATEGIES)
    for entry in result.values():
        assert entry["supported"] is False
        assert entry["reason"] == "criu check failed on node7: CRIU 3.15 is older than 4.0"


def test_node_without_check_facts():
    result = node_strategies({})
    assert not any(entry["supported"] for entry in result.values())
    assert result["cold"]["reason"] == "criu check failed on this node: unknown reason"


def test_node_features_may_be_plain_booleans_when_supported():
    result = node_strategies({"check": {"ok": True}, "pipe_max_size": 2**23,
                              "features": {"mem_dirty_track": True, "uffd_noncoop": True}})
    assert result["precopy"]["supported"] and result["postcopy"]["supported"]


# --------------------------------------------------------------------------- choose_strategy: auto


def test_auto_picks_precopy_where_both_nodes_track_dirty_memory():
    choice = choose_strategy("auto", FULL, facts(hostname="other"))
    assert choice["strategy"] == "precopy"
    assert choice["risk"] == RISKS["precopy"]
    assert choice["refused"] == {}
    assert choice["reason"] == "auto picked precopy, the first of precopy/postcopy/delta/cold that both nodes support"


def test_auto_picks_postcopy_here_and_says_why_precopy_was_skipped():
    choice = choose_strategy("auto", HERE, HERE)
    assert choice["strategy"] == "postcopy"
    assert choice["risk"] == RISKS["postcopy"]
    assert set(choice["refused"]) == {"precopy"}
    assert "skipped precopy (source: precopy needs memory dirty tracking" in choice["reason"]
    assert "target: precopy needs" in choice["refused"]["precopy"]


def test_auto_one_node_without_soft_dirty_is_enough_to_skip_precopy():
    choice = choose_strategy("auto", FULL, HERE)
    assert choice["strategy"] == "postcopy"
    assert choice["refused"]["precopy"].startswith("target: ")
    assert "source:" not in choice["refused"]["precopy"]


def test_auto_falls_back_to_delta_without_soft_dirty_and_uffd():
    node = facts(soft_dirty=False, uffd=False)
    choice = choose_strategy("auto", node, node)
    assert choice["strategy"] == "delta"
    assert set(choice["refused"]) == {"precopy", "postcopy"}
    assert "skipped precopy (" in choice["reason"] and "postcopy (" in choice["reason"]


def test_auto_with_low_pipe_max_on_target():
    choice = choose_strategy("auto", HERE, facts(soft_dirty=False, pipe_max=1048576))
    assert choice["strategy"] == "delta"
    assert "target: postcopy needs fs.pipe-max-size" in choice["refused"]["postcopy"]


def test_auto_custom_order():
    choice = choose_strategy("auto", FULL, FULL, auto_order=["cold", "precopy"])
    assert choice["strategy"] == "cold"
    assert "cold/precopy" in choice["reason"]


def test_auto_nothing_works():
    broken = facts(check_ok=False, check_message="no ptrace")
    with pytest.raises(ValueError) as info:
        choose_strategy("auto", broken, FULL)
    msg = str(info.value)
    assert msg.startswith("no migration strategy works between these nodes: ")
    for name in STRATEGIES:
        assert "%s: source: criu check failed on node: no ptrace" % name in msg


def test_auto_unknown_name_in_order():
    with pytest.raises(ValueError, match="auto order must list known strategies"):
        choose_strategy("auto", FULL, FULL, auto_order=["warp", "cold"])
    # Caught even when an earlier entry would have been chosen.
    with pytest.raises(ValueError, match="'bogus'"):
        choose_strategy("auto", FULL, FULL, auto_order=["cold", "bogus"])


def test_auto_empty_order_is_refused():
    with pytest.raises(ValueError, match="auto order"):
        choose_strategy("auto", FULL, FULL, auto_order=[])


def test_plain_bool_features_do_not_crash():
    facts_bool = {"check": {"ok": True}, "features": {"mem_dirty_track": False, "uffd_noncoop": False},
                  "pipe_max_size": 4194304}
    result = node_strategies(facts_bool)
    assert not result["precopy"]["supported"] and "not supported" in result["precopy"]["reason"]
    assert not result["postcopy"]["supported"] and "not supported" in result["postcopy"]["reason"]


def test_default_auto_order_is_known_strategies():
    assert set(DEFAULT_AUTO_ORDER) == set(STRATEGIES)
    assert DEFAULT_AUTO_ORDER[0] == "precopy" and DEFAULT_AUTO_ORDER[-1] == "cold"


# --------------------------------------------------------------------------- choose_strategy: requested


@pytest.mark.parametrize("name", STRATEGIES)
def test_requested_supported(name):
    choice = choose_strategy(name, FULL, FULL)
    assert choice == {"strategy": name, "reason": "requested", "risk": RISKS[name], "refused": {}}


def test_requested_precopy_refused_names_missing_feature():
    with pytest.raises(ValueError) as info:
        choose_strategy("precopy", HERE, FULL)
    msg = str(info.value)
    assert msg.startswith("strategy precopy is refused: source: ")
    assert "mem_dirty_track" in msg and "CONFIG_MEM_SOFT_DIRTY" in msg
    assert "target:" not in msg


def test_requested_postcopy_refused_on_both_sides():
    with pytest.raises(ValueError) as info:
        choose_strategy("postcopy", facts(uffd=False), facts(pipe_max=65536))
    msg = str(info.value)
    assert "source: postcopy needs non-cooperative userfaultfd" in msg
    assert "target: postcopy needs fs.pipe-max-size" in msg


def test_requested_refusal_lists_other_refusals_on_success():
    choice = choose_strategy("delta", HERE, HERE)
    assert choice["strategy"] == "delta"
    assert set(choice["refused"]) == {"precopy"}


def test_requested_unknown_strategy():
    with pytest.raises(ValueError, match=r"unknown strategy 'live' \(choose auto, cold, precopy, delta, postcopy\)"):
        choose_strategy("live", FULL, FULL)


def test_facts_are_not_modified():
    src, dst = copy.deepcopy(HERE), copy.deepcopy(FULL)
    choose_strategy("auto", src, dst)
    assert src == HERE and dst == FULL
