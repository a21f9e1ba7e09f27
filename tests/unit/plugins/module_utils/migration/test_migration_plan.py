# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the early refusals (module_utils/migration/plan.py) over realistic node facts."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.podmig.live.plugins.module_utils.migration.plan import DISK_FACTOR, DISK_MARGIN, plan_migration
from ansible_collections.podmig.live.plugins.module_utils.strategy import RISKS

GiB = 1024 ** 3
MiB = 1024 ** 2
LOWER = ["/var/lib/containers/storage/overlay/l/AAA", "/var/lib/containers/storage/overlay/l/BBB"]


def criu_facts(check_ok=True, soft_dirty=True, uffd=True, arch="x86_64", page_size=4096,
               cpu_flags=("fpu", "sse2", "avx2"), installed=True, message="Looks good."):
    """Shaped like criu_info's podmig_criu facts."""
    return {
        "installed": installed,
        "hostname": "node",
        "arch": arch,
        "page_size": page_size,
        "pipe_max_size": 4 * MiB,
        "cpu_flags": list(cpu_flags),
        "check": {"ok": check_ok, "message": message},
        "features": {
            "mem_dirty_track": {"supported": soft_dirty,
                                "message": "" if soft_dirty else "Dirty tracking is OFF. Memory snapshot will not work."},
            "uffd_noncoop": {"supported": uffd, "message": "" if uffd else "UFFD is not supported"},
        },
    }


def container_facts(exists=True, status="running", rss=256 * MiB, upperdir="/var/lib/ct/upper"):
    """Shaped like container_info's result."""
    if not exists:
        return {"exists": False}
    return {
        "exists": True,
        "status": status,
        "pid": 4242,
        "rss_bytes": rss,
        "overlay": {"upperdir": upperdir, "workdir": "/var/lib/ct/work", "lowerdirs": list(LOWER)}
        if upperdir else None,
    }


def request(**overrides):
    base = {"container": "web1", "source_node": "node1", "target_node": "node2", "strategy": "auto"}
    base.update(overrides)
    return base


def source(**overrides):
    base = {"criu": criu_facts(), "container": container_facts(), "locked": False,
            "lock_path": "/run/podmig/web1.lock"}
    base.update(overrides)
    return base


def target(**overrides):
    base = {"criu": criu_facts(), "free_bytes": 10 * GiB, "missing_lowerdirs": [], "container_exists": False}
    base.update(overrides)
    return base


def refused_names(result):
    return [c["name"] for c in result["checks"] if not c["ok"]]


# --------------------------------------------------------------------------- accepted


def test_accepted_plan():
    result = plan_migration(request(), source(), target())
    assert result["ok"] is True
    assert result["refusals"] == []
    assert result["strategy"] == "precopy"
    assert result["risk"] == RISKS["precopy"]
    assert "auto picked precopy" in result["reason"]
    assert result["refused_strategies"] == {}
    assert all(c["ok"] for c in result["checks"])
    names = [c["name"] for c in result["checks"]]
    for expected in ("different nodes", "container exists", "container running", "not being migrated",
                     "CRIU usable on source", "CRIU usable on target", "same architecture", "CPU features",
                     "writable layer is an overlay", "disk space on target", "image present on target",
                     "container id free on target", "strategy"):
        assert expected in names
    strategy_check = [c for c in result["checks"] if c["name"] == "strategy"][0]
    assert strategy_check["detail"].startswith("precopy: ")


def test_accepted_without_soft_dirty_picks_next_in_auto_order():
    facts = criu_facts(soft_dirty=False)
    result = plan_migration(request(), source(criu=facts), target(criu=copy.deepcopy(facts)))
    assert result["ok"] is True
    assert result["strategy"] == "postcopy"
    assert "precopy" in result["refused_strategies"]


def test_custom_auto_order_is_used():
    result = plan_migration(request(auto_order=["delta", "cold"]), source(), target())
    assert result["ok"] is True
    assert result["strategy"] == "delta"


def test_requested_strategy_is_used():
    result = plan_migration(request(strategy="cold"), source(), target())
    assert result["ok"] is True
    assert result["strategy"] == "cold"
    assert result["reason"] == "requested"


def test_target_with_extra_cpu_flags_is_fine():
    result = plan_migration(request(), source(), target(criu=criu_facts(cpu_flags=("fpu", "sse2", "avx2", "avx512f"))))
    assert result["ok"] is True


# --------------------------------------------------------------------------- single refusals


def test_same_node_refused():
    result = plan_migration(request(target_node="node1"), source(), target())
    assert result["ok"] is False
    assert refused_names(result) == ["different nodes"]
    assert result["refusals"] == ["different nodes: source and target are both node1: choose another target node"]


def test_missing_container_refused():
    result = plan_migration(request(), source(container=container_facts(exists=False)), target())
    assert result["ok"] is False
    # a missing container is one refusal: its status and overlay checks are skipped
    assert refused_names(result) == ["container exists"]
    assert "container web1 does not exist on node1" in result["refusals"][0]
    assert "writable layer is an overlay" not in [c["name"] for c in result["checks"]]


def test_no_container_facts_at_all_refused():
    result = plan_migration(request(), source(container=None), target())
    assert "container exists" in refused_names(result)


def test_stopped_container_refused():
    result = plan_migration(request(), source(container=container_facts(status="stopped", rss=None)), target())
    assert refused_names(result) == ["container running"]
    assert result["refusals"] == ["container running: status is stopped"]


def test_paused_container_refused_mentions_another_migration():
    result = plan_migration(request(), source(container=container_facts(status="paused")), target())
    assert refused_names(result) == ["container running"]
    assert "status is paused" in result["refusals"][0]
    assert "another migration" in result["refusals"][0]


def test_locked_container_refused():
    result = plan_migration(request(), source(locked=True), target())
    assert refused_names(result) == ["not being migrated"]
    assert "already in progress" in result["refusals"][0]
    assert "/run/podmig/web1.lock" in result["refusals"][0]


@pytest.mark.parametrize("side", ["source", "target"])
def test_criu_check_failing_refused(side):
    bad = criu_facts(check_ok=False, message="Error (criu/cr-check.c:1234): seccomp is not supported")
    src = source(criu=bad) if side == "source" else source()
    dst = target(criu=bad) if side == "target" else target()
    result = plan_migration(request(), src, dst)
    assert result["ok"] is False
    # no strategy can run either
    assert refused_names(result) == ["CRIU usable on %s" % side, "strategy"]
    assert "seccomp is not supported" in result["refusals"][0]
    assert result["strategy"] is None


@pytest.mark.parametrize("side", ["source", "target"])
def test_criu_not_installed_refused(side):
    bad = criu_facts(installed=False, check_ok=True, message="criu is not installed")
    src = source(criu=bad) if side == "source" else source()
    dst = target(criu=bad) if side == "target" else target()
    result = plan_migration(request(), src, dst)
    assert refused_names(result) == ["CRIU usable on %s" % side]


def test_no_criu_facts_refused_with_a_message():
    result = plan_migration(request(), source(criu={}), target())
    assert "CRIU usable on source: criu_info gave no facts" in result["refusals"]


def test_arch_mismatch_refused():
    result = plan_migration(request(), source(), target(criu=criu_facts(arch="aarch64")))
    assert refused_names(result) == ["same architecture"]
    assert result["refusals"] == ["same architecture: source x86_64/4096, target aarch64/4096"]


def test_page_size_mismatch_refused():
    result = plan_migration(request(), source(), target(criu=criu_facts(page_size=65536)))
    assert refused_names(result) == ["same architecture"]
    assert "target x86_64/65536" in result["refusals"][0]


def test_missing_cpu_flags_refused_and_listed_sorted():
    result = plan_migration(
        request(),
        source(criu=criu_facts(cpu_flags=("fpu", "sse2", "avx2", "avx512f", "aes"))),
        target(criu=criu_facts(cpu_flags=("fpu", "sse2"))),
    )
    assert refused_names(result) == ["CPU features"]
    assert result["refusals"] == ["CPU features: target lacks CPU flags the process may use: aes avx2 avx512f"]


def test_too_little_disk_refused_with_mib_numbers():
    rss = 1 * GiB
    need_mib = (int(rss * DISK_FACTOR) + DISK_MARGIN) >> 20
    assert need_mib == 1600
    result = plan_migration(request(), source(container=container_facts(rss=rss)), target(free_bytes=1 * GiB))
    assert refused_names(result) == ["disk space on target"]
    assert result["refusals"] == ["disk space on target: 1024 MiB free for images, 1600 MiB needed"]


def test_disk_exactly_enough_is_accepted():
    rss = 1 * GiB
    need = int(rss * DISK_FACTOR) + DISK_MARGIN
    assert plan_migration(request(), source(container=container_facts(rss=rss)), target(free_bytes=need))["ok"]
    result = plan_migration(request(), source(container=container_facts(rss=rss)), target(free_bytes=need - 1))
    assert refused_names(result) == ["disk space on target"]


def test_unknown_free_space_counts_as_none():
    result = plan_migration(request(), source(), target(free_bytes=None))
    assert refused_names(result) == ["disk space on target"]


def test_missing_lowerdirs_refused_and_listed():
    result = plan_migration(request(), source(), target(missing_lowerdirs=list(LOWER)))
    assert refused_names(result) == ["image present on target"]
    assert result["refusals"] == ["image present on target: missing on the target: " + ", ".join(LOWER)]


def test_container_id_taken_on_target_refused():
    result = plan_migration(request(), source(), target(container_exists=True))
    assert refused_names(result) == ["container id free on target"]
    assert result["refusals"] == ["container id free on target: a container web1 already exists on the target"]


def test_not_an_overlay_refused():
    result = plan_migration(request(), source(container=container_facts(upperdir=None)), target())
    assert refused_names(result) == ["writable layer is an overlay"]
    assert "not an overlay mount" in result["refusals"][0]
    assert "web1" in result["refusals"][0]


def test_precopy_without_dirty_tracking_refused():
    result = plan_migration(request(strategy="precopy"), source(criu=criu_facts(soft_dirty=False)), target())
    assert refused_names(result) == ["strategy"]
    assert result["strategy"] is None
    assert "strategy precopy is refused" in result["refusals"][0]
    assert "CONFIG_MEM_SOFT_DIRTY" in result["refusals"][0]
    assert "source:" in result["refusals"][0]


def test_unknown_strategy_refused():
    result = plan_migration(request(strategy="warp"), source(), target())
    assert refused_names(result) == ["strategy"]
    assert "unknown strategy 'warp'" in result["refusals"][0]


# --------------------------------------------------------------------------- several at once


def test_every_refusal_reported_at_once():
    result = plan_migration(
        request(target_node="node1", strategy="precopy"),
        source(locked=True, container=container_facts(status="paused", rss=2 * GiB, upperdir=None),
               criu=criu_facts(soft_dirty=False, cpu_flags=("fpu", "avx2"))),
        target(criu=criu_facts(arch="aarch64", cpu_flags=("fpu",)), free_bytes=100 * MiB,
               missing_lowerdirs=["/l/X"], container_exists=True),
    )
    assert result["ok"] is False
    assert refused_names(result) == [
        "different nodes",
        "container running",
        "not being migrated",
        "same architecture",
        "CPU features",
        "writable layer is an overlay",
        "disk space on target",
        "image present on target",
        "container id free on target",
        "strategy",
    ]
    assert len(result["refusals"]) == 10
    assert all(": " in r for r in result["refusals"])
