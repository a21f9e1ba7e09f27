# -*- coding: utf-8 -*-
"""The pure helpers of bench/pod_migration.py: names, manifest, report line, ratios, summary, table.

bench/ is not a package: the script is loaded from its path (it imports nothing of the lab at load).
"""

from __future__ import annotations

import importlib.util
import os
import re

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC = importlib.util.spec_from_file_location("bench_pod_migration", os.path.join(REPO, "bench", "pod_migration.py"))
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def run(size, rate, strategy, repeat=0, outcome="migrated", **fields):
    row = {"rss_mib": size, "write_rate": rate, "strategy": strategy, "repeat": repeat, "outcome": outcome}
    if outcome == "migrated":
        row.update(counter_continued=True, memory_ok=True)
    row.update(fields)
    return row


def test_pod_names_are_dns_labels_and_tell_the_run_apart():
    names = {bench.pod_name(size, rate, strategy, index, "0a1b")
             for size in (32, 1024) for rate in (0.02, 0.5) for strategy in ("cold", "postcopy") for index in (0, 1)}
    assert len(names) == 16
    for name in names:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63, name
    assert bench.pod_name(1024, 0.02, "postcopy", 1, "0A1B") == "pmb-1024-r002-postcopy-1-0a1b"


def test_the_workload_pod_is_pinned_with_its_tick_log_in_an_emptydir():
    pod = bench.workload_manifest("pmb-x", "localhost/podmig/workload:abc", "podmig-w1", 256, 0.5)
    spec = pod["spec"]
    assert spec["nodeName"] == "podmig-w1" and spec["terminationGracePeriodSeconds"] == 1
    container = spec["containers"][0]
    assert container["args"] == ["-m", "256", "-r", "0.5", "-t", "10", "-l", "/data/tick.log"]
    assert container["imagePullPolicy"] == "Never"
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert spec["volumes"] == [{"name": "data", "emptyDir": {}}]
    assert pod["metadata"]["labels"]["app"] == "pmb-x"
    assert "resources" not in container


def test_the_report_path_comes_from_the_summary_line():
    out = ("TASK [Report | Summary]\nok: [localhost] =>\n  msg:\n  - 'podmig: pod default/a podmig-w1 -> podmig-w2: "
           "MIGRATED'\n  - 'report: /work/main/playbooks/../reports/pod-migration-default-a-1795955232.63.json'\n")
    assert bench.report_path(out) == "/work/main/playbooks/../reports/pod-migration-default-a-1795955232.63.json"
    assert bench.report_path("PLAY RECAP\nlocalhost : ok=3 failed=1") is None


@pytest.mark.parametrize("marker,root,expect", [
    (None, "noqueue", {"lab_link_rate": "none"}),
    ("rate=0 delay=", None, {"lab_link_rate": "none"}),
    ("rate=1000000000 delay=", "tbf", {"lab_link_rate": "1000000000bit"}),
    ("rate=100000000 delay=5ms", "netem", {"lab_link_rate": "100000000bit", "lab_link_delay": "5ms"}),
    ("rate=1000000000 delay=", "noqueue", {"lab_link_rate": "none"}),  # the marker outlived the qdisc
])
def test_the_shaping_found_on_a_node_is_what_lab_shape_needs_to_put_it_back(marker, root, expect):
    assert bench.shaping_from_marker(marker, root) == expect


def test_ratio():
    assert bench.ratio(0.5, 2.0) == 0.25
    assert bench.ratio(1, 3) == 0.333
    assert bench.ratio(None, 1.0) is None
    assert bench.ratio(1.0, None) is None
    assert bench.ratio(1.0, 0) is None


def test_each_strategy_is_compared_with_the_cold_run_next_to_it():
    rows = [
        run(64, 0.02, "cold", 0, downtime_s=0.8, pause_s=1.0, total_s=10.0),
        run(64, 0.02, "postcopy", 0, downtime_s=0.2, pause_s=0.5, total_s=12.0),
        run(64, 0.02, "cold", 1, downtime_s=1.6, pause_s=2.0, total_s=20.0),
        run(64, 0.02, "postcopy", 1, downtime_s=0.4, pause_s=0.5, total_s=10.0),
        run(64, 0.5, "cold", 0, downtime_s=2.0, pause_s=2.0, total_s=10.0),
        run(64, 0.5, "postcopy", 0, downtime_s=0.5),
    ]
    bench.add_ratios(rows)
    assert rows[0]["downtime_ratio_to_cold"] == 1.0
    assert (rows[1]["downtime_ratio_to_cold"], rows[1]["pause_ratio_to_cold"], rows[1]["total_ratio_to_cold"]) == \
        (0.25, 0.5, 1.2)
    assert (rows[3]["downtime_ratio_to_cold"], rows[3]["total_ratio_to_cold"]) == (0.25, 0.5)
    assert rows[5]["downtime_ratio_to_cold"] == 0.25 and "total_ratio_to_cold" not in rows[5]


def test_without_its_own_cold_run_a_row_is_compared_with_the_median_cold():
    rows = [
        run(256, 0.5, "cold", 0, downtime_s=1.0),
        run(256, 0.5, "cold", 1, outcome="failed"),
        run(256, 0.5, "cold", 2, downtime_s=3.0),
        run(256, 0.5, "postcopy", 1, downtime_s=0.5),
    ]
    bench.add_ratios(rows)
    assert rows[3]["downtime_ratio_to_cold"] == 0.25


def test_refused_and_failed_runs_get_no_ratio_and_nothing_is_compared_across_sizes_or_rates():
    rows = [
        run(64, 0.02, "cold", downtime_s=1.0),
        run(64, 0.02, "postcopy", outcome="refused", refusals=["postcopy needs userfaultfd on podmig-w2"]),
        run(64, 0.5, "postcopy", downtime_s=0.3),
        run(1024, 0.02, "postcopy", downtime_s=0.3),
    ]
    bench.add_ratios(rows)
    assert not any("downtime_ratio_to_cold" in r for r in rows[1:])


def test_the_summary_takes_medians_and_keeps_refusals():
    rows = [
        run(64, 0.02, "postcopy", 0, downtime_s=0.2, bytes_sent=100),
        run(64, 0.02, "cold", 0, downtime_s=1.0, bytes_sent=2**20),
        run(64, 0.02, "cold", 1, downtime_s=3.0, bytes_sent=3 * 2**20),
        run(64, 0.02, "cold", 2, downtime_s=2.0, bytes_sent=2 * 2**20, memory_ok=False),
        run(64, 0.5, "postcopy", 0, outcome="refused", refusals=["no uffd"]),
    ]
    summary = bench.summarize(bench.add_ratios(rows))
    assert [(s["rss_mib"], s["write_rate"], s["strategy"]) for s in summary] == [
        (64, 0.02, "cold"), (64, 0.02, "postcopy"), (64, 0.5, "postcopy")]
    cold, post, refused = summary
    assert (cold["runs"], cold["migrated"], cold["downtime_s"], cold["bytes_sent"]) == (3, 3, 2.0, 2 * 2**20)
    assert cold["checks_ok"] is False and post["checks_ok"] is True
    assert post["downtime_ratio_to_cold"] == 0.2
    assert refused["refusals"] == ["no uffd"] and refused["downtime_s"] is None and refused["checks_ok"] is False


def test_a_run_is_ok_when_migrated_with_its_checks_or_refused_by_the_plan():
    assert bench.row_ok(run(64, 0.02, "cold"))
    assert not bench.row_ok(run(64, 0.02, "cold", counter_continued=False))
    assert not bench.row_ok(run(64, 0.02, "cold", memory_ok=None))
    assert bench.row_ok(run(64, 0.02, "postcopy", outcome="refused", refusals=["x"]))
    assert not bench.row_ok(run(64, 0.02, "postcopy", outcome="rolled_back"))
    assert not bench.row_ok(run(64, 0.02, "cold", outcome="error", error_local="RuntimeError: pod did not run"))


def test_the_table_shows_downtime_pause_total_mib_and_ratios_with_notes_below():
    rows = bench.add_ratios([
        run(1024, 0.5, "cold", downtime_s=9.5, pause_s=9.0, total_s=30.0, bytes_sent=1100 * 2**20,
            wire_tx_bytes=1150 * 2**20),
        run(1024, 0.5, "postcopy", downtime_s=0.95, pause_s=0.9, total_s=35.0, bytes_sent=80000,
            wire_tx_bytes=1120 * 2**20),
        run(1024, 0.02, "postcopy", outcome="refused", refusals=["postcopy is not possible: no userfaultfd"]),
        run(64, 0.02, "cold", counter_continued=False, starts=2, counter_resets=[[10, 1]], downtime_s=1.0),
        run(64, 0.02, "postcopy", outcome="error", error_local="RuntimeError: pod pmb did not run"),
    ])
    table = bench.format_table(rows)
    lines = table.splitlines()
    assert lines[0].split() == ["RSS", "MiB", "rate", "strategy", "outcome", "downtime", "s", "x", "cold", "pause",
                                "s", "x", "cold", "total", "s", "MiB", "sent", "MiB", "wire", "checks"]
    assert lines[1].split() == ["1024", "0.5", "cold", "migrated", "9.500", "1.00", "9.000", "1.00", "30.00",
                                "1100.0", "1150.0", "ok"]
    assert lines[2].split() == ["1024", "0.5", "postcopy", "migrated", "0.950", "0.10", "0.900", "0.10", "35.00",
                                "0.1", "1120.0", "ok"]
    assert lines[3].split() == ["1024", "0.02", "postcopy", "refused", "-", "-", "-", "-", "-", "-", "-", "-"]
    assert lines[4].split()[-1] == "FAIL"
    assert lines[5].split()[3] == "error"
    assert "1024 MiB rate 0.02 postcopy refused: postcopy is not possible: no userfaultfd" in table
    assert "64 MiB rate 0.02 cold: starts 2, counter resets [[10, 1]], memory verify True" in table
    assert "64 MiB rate 0.02 postcopy: RuntimeError: pod pmb did not run" in table
    # the columns line up
    assert lines[0].index("checks") == lines[1].rindex("ok") == lines[2].rindex("ok")
    assert lines[0].index("MiB wire") + len("MiB wire") == lines[1].index("1150.0") + len("1150.0")


def test_the_summary_prints_as_a_table_too():
    summary = bench.summarize(bench.add_ratios([run(32, 0.02, "cold", downtime_s=0.4),
                                                 run(32, 0.02, "postcopy", downtime_s=0.1)]))
    lines = bench.format_table(summary).splitlines()
    assert lines[1].split()[:6] == ["32", "0.02", "cold", "migrated", "0.400", "1.00"]
    assert lines[2].split()[:6] == ["32", "0.02", "postcopy", "migrated", "0.100", "0.25"]
    assert lines[2].split()[-1] == "ok"


def test_the_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    summary = bench.summarize(bench.add_ratios([
        run(64, 0.02, "cold", downtime_s=0.6), run(64, 0.02, "postcopy", downtime_s=0.2),
        run(1024, 0.02, "cold", downtime_s=9.0), run(1024, 0.02, "postcopy", downtime_s=0.3),
        run(64, 0.5, "cold", downtime_s=0.7), run(64, 0.5, "postcopy", outcome="refused", refusals=["no"]),
        run(1024, 0.5, "cold", downtime_s=9.0),
        run(1024, 0.5, "postcopy", outcome="failed", measured_after_failure=True, downtime_s=1.0),
    ]))
    path = str(tmp_path / "plot.png")
    assert bench.plot(summary, path, "test")
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_run_that_failed_after_its_restore_but_ran_on_is_measured_apart():
    rows = bench.add_ratios([
        run(1024, 0.02, "cold", downtime_s=12.0, total_s=34.0),
        run(1024, 0.02, "postcopy", outcome="failed", measured_after_failure=True, downtime_s=1.2, total_s=168.0,
            counter_continued=True, memory_ok=True, error="Timed out waiting on resource"),
    ])
    assert rows[1]["downtime_ratio_to_cold"] == 0.1 and rows[1]["total_ratio_to_cold"] == 4.941
    assert not bench.row_ok(rows[1])
    cold, post = bench.summarize(rows)
    assert post["migrated"] == 0 and post["downtime_s"] is None
    assert (post["downtime_after_failure_s"], post["downtime_after_failure_ratio_to_cold"]) == (1.2, 0.1)
    assert "downtime_after_failure_s" not in cold
    table = bench.format_table(rows)
    line = table.splitlines()[2].split()
    assert line[:6] == ["1024", "0.02", "postcopy", "failed", "1.200", "0.10"] and line[-1] == "ok"
    assert "the playbook failed after the restore, the restored pod ran on: measured" in table
    assert "1024 MiB rate 0.02 postcopy: Timed out waiting on resource" in table


def test_the_pod_that_survived_runs_on_the_target_never_restarted():
    from types import SimpleNamespace as NS

    def pod(node="podmig-w2", phase="Running", running=True, restarts=0):
        status = NS(state=NS(running={"startedAt": "now"} if running else None), restart_count=restarts)
        return NS(spec=NS(node_name=node), status=NS(phase=phase, container_statuses=[status]))

    assert bench.survived(pod(), "podmig-w2")
    assert not bench.survived(pod(node="podmig-w1"), "podmig-w2")
    assert not bench.survived(pod(phase="Pending", running=False), "podmig-w2")
    assert not bench.survived(pod(restarts=1), "podmig-w2")


def test_a_playbook_failure_is_told_by_its_last_message():
    out = """TASK [Cleanup | Remove the staged images] ***
    -   ansible_loop_var: item
        msg: ''
        stdout: removed
    -   item:
            host: podmig-w2
        msg: 'Task failed: Data could not be sent to remote host "10.89.7.12". Make sure
            this host can be reached over ssh: No route to host'
        unreachable: true

PLAY RECAP *********************************************************************
localhost                  : ok=29   changed=5    unreachable=1    failed=0
"""
    assert bench.playbook_failure(out) == 'Task failed: Data could not be sent to remote host "10.89.7.12". Make sure'
    assert bench.playbook_failure("PLAY RECAP\nlocalhost : ok=1 failed=1\n") == "localhost : ok=1 failed=1"
    assert bench.playbook_failure("") == ""
