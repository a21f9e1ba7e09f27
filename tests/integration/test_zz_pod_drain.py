# -*- coding: utf-8 -*-
"""playbooks/drain.yml on the lab cluster: podmig-w1 drained, its opted-in stateful pods live-migrated.

Runs after test_zz_lab_cluster.py (the cluster is up) and before test_zz_pod_migration.py (whose last
test takes the lab down). Everything lives in its own namespace and the drains are limited to it
(drain_namespaces): the lab is shared with other tests. The cluster lock /tmp/podmig-cluster.lock is
held from the first cordon to the last uncordon; podmig-w1 is uncordoned and the namespace deleted at
the end whatever happened.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import time

import pytest

from support.ansible_runner import REPO, ansible_env, playbook_argv
from test_lab import explain
from test_zz_pod_migration import (  # noqa: F401  (api is a fixture)
    LAB_INVENTORY, SOURCE, TARGET, api, image_named, read_ticks, tick_log, wait_running, wait_ticks)

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402
from kubernetes.utils.quantity import parse_quantity  # noqa: E402

DRAIN = os.path.join(REPO, "playbooks", "drain.yml")
NS = "drain-test"
LOCK = "/tmp/podmig-cluster.lock"
OPT_IN = {"podmig.live/migrate": "true"}


@pytest.fixture(scope="module")
def cluster(api):
    """The API, the cluster lock held, a fresh namespace; afterwards w1 uncordoned and the namespace gone."""
    with open(LOCK, "a+", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            delete_namespace(api)
            api.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
            yield api
        finally:
            api.patch_node(SOURCE, {"spec": {"unschedulable": False}})
            delete_namespace(api)
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def ns(cluster):
    """The namespace emptied of what an earlier test left (a blocking budget would hold the next drain)."""
    apps, policy = client.AppsV1Api(), client.PolicyV1Api()
    for deployment in apps.list_namespaced_deployment(NS).items:
        apps.delete_namespaced_deployment(deployment.metadata.name, NS)
    for budget in policy.list_namespaced_pod_disruption_budget(NS).items:
        policy.delete_namespaced_pod_disruption_budget(budget.metadata.name, NS)
    cluster.delete_collection_namespaced_pod(NS, grace_period_seconds=0)
    deadline = time.monotonic() + 120
    while cluster.list_namespaced_pod(NS).items:
        assert time.monotonic() < deadline, "the pods of %s did not go" % NS
        time.sleep(1)
    return cluster


def delete_namespace(api) -> None:
    try:
        api.delete_namespace(NS, grace_period_seconds=0)
    except ApiException as exc:
        if exc.status != 404:
            raise
        return
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            api.read_namespace(NS)
        except ApiException:
            return
        time.sleep(1)


def drain(check: bool = False, **extra) -> tuple[subprocess.CompletedProcess, dict, float]:
    """Run drain.yml on w1 (limited to the test's namespace); return the process, its report and its time."""
    extra_vars = dict({"drain_nodes": SOURCE, "drain_namespaces": NS}, **extra)
    start = time.monotonic()
    proc = subprocess.run(playbook_argv(DRAIN, extra_vars, LAB_INVENTORY, check), capture_output=True, text=True,
                          timeout=900, env=ansible_env(), check=False)
    elapsed = time.monotonic() - start
    match = re.search(r"drain report: (\S+\.json)", proc.stdout)
    report = {}
    if match:
        with open(match.group(1), encoding="utf-8") as handle:
            report = json.load(handle)
    return proc, report, elapsed


def rows(report: dict) -> dict:
    return {p["name"]: p for p in report.get("pods", [])}


def workload(api, name: str, memory: str = "32Mi", node: str = SOURCE) -> object:
    """A stateful bare pod on the node, opted in: tools/workload with a tick log in an emptyDir."""
    api.create_namespaced_pod(NS, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": OPT_IN},
        "spec": {
            "nodeName": node, "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "app", "image": image_named(api, node, "localhost/podmig/workload"),
                "imagePullPolicy": "Never",
                "args": ["-m", "16", "-r", "0.1", "-t", "10", "-l", "/data/tick.log"],
                "resources": {"requests": {"cpu": "10m", "memory": memory}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    })
    return wait_running(api, name, NS, timeout=90)


def sleeper(api, name: str, memory: str, node: str) -> object:
    """A pod that only holds a memory request on a node."""
    api.create_namespaced_pod(NS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [{
            "name": "sleep", "image": image_named(api, node, "localhost/podmig/debug"), "imagePullPolicy": "Never",
            "command": ["sleep", "100000"], "resources": {"requests": {"cpu": "10m", "memory": memory}}}]}})
    return wait_running(api, name, NS, timeout=90)


def deployment(api, name: str, max_unavailable: int) -> object:
    """One replica preferring w1 (nothing requires it there) and a PodDisruptionBudget for it."""
    client.AppsV1Api().create_namespaced_deployment(NS, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                         "weight": 100, "preference": {"matchExpressions": [
                             {"key": "kubernetes.io/hostname", "operator": "In", "values": [SOURCE]}]}}]}},
                     "containers": [{"name": "sleep", "image": image_named(api, SOURCE, "localhost/podmig/debug"),
                                     "imagePullPolicy": "Never", "command": ["sleep", "100000"],
                                     "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}}}]}}}})
    client.PolicyV1Api().create_namespaced_pod_disruption_budget(NS, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name + "-pdb"},
        "spec": {"maxUnavailable": max_unavailable, "selector": {"matchLabels": {"app": name}}}})
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        pods = running_of(api, name)
        if pods:
            assert pods[0].spec.node_name == SOURCE, "the scheduler put %s on %s" % (name, pods[0].spec.node_name)
            # the budget's controller has to count it healthy before an eviction is judged
            pdb = client.PolicyV1Api().read_namespaced_pod_disruption_budget(name + "-pdb", NS)
            if pdb.status and pdb.status.observed_generation and pdb.status.current_healthy == 1:
                return pods[0]
        time.sleep(1)
    raise AssertionError("deployment %s did not run" % name)


def running_of(api, app: str) -> list:
    return [p for p in api.list_namespaced_pod(NS, label_selector="app=%s" % app).items
            if not p.metadata.deletion_timestamp and p.status.phase == "Running"]


def cordoned(api) -> bool:
    return bool(api.read_node(SOURCE).spec.unschedulable)


def free_memory(api, node: str) -> int:
    allocatable = int(parse_quantity(api.read_node(node).status.allocatable["memory"]))
    used = 0
    for pod in api.list_pod_for_all_namespaces(field_selector="spec.nodeName=%s" % node).items:
        if pod.status.phase in ("Succeeded", "Failed"):
            continue
        for container in pod.spec.containers:
            used += int(parse_quantity(((container.resources and container.resources.requests) or {}).get("memory", 0)))
    return allocatable - used


def test_a_drain_whose_stateful_pods_do_not_fit_is_refused_before_anything_moves(ns):
    api = ns
    # A pod w1 can hold but w2 cannot: its request is just under w1's free memory, and w2 is filled
    # (with a request only: nothing is allocated) to less than that.
    huge = free_memory(api, SOURCE) - (256 << 20)
    filler = max(0, free_memory(api, TARGET) - huge) + (512 << 20)
    sleeper(api, "filler", str(filler), TARGET)
    pod = workload(api, "huge", memory=str(huge))
    try:
        proc, report, elapsed = drain()
        assert proc.returncode != 0, explain(proc)
        assert "refused: drain-test/huge: no node can take it" in proc.stdout, explain(proc)
        row = rows(report)["huge"]
        assert row["outcome"] == "refused" and "%s: needs memory" % TARGET in row["reason"], row
        assert "%s: the node being drained" % SOURCE in row["reason"]
        # Nothing moved: w1 not cordoned, the pod untouched (same uid, not locked, no shell pod).
        assert not cordoned(api) and not report["cordoned"]
        same = api.read_namespaced_pod("huge", NS)
        assert same.metadata.uid == pod.metadata.uid and same.spec.node_name == SOURCE
        assert "podmig.live/migration" not in (same.metadata.annotations or {})
        assert [p.metadata.name for p in running_of(api, "huge")] == ["huge"]
        print("\nrefused drain: %.1f s" % elapsed)
    finally:
        for name in ("huge", "filler"):
            api.delete_namespaced_pod(name, NS, grace_period_seconds=0)


def test_drain_migrates_the_opted_in_pods_evicts_the_rest_and_a_rerun_finds_nothing_left(ns):
    api = ns
    sources = {name: workload(api, name) for name in ("stateful-a", "stateful-b")}
    plain = deployment(api, "plain", max_unavailable=1)
    before = {name: wait_ticks(SOURCE, tick_log(pod), 50) for name, pod in sources.items()}

    # Check mode: the plan and a report, nothing cordoned or moved.
    proc, report, _ = drain(check=True)
    assert proc.returncode == 0, explain(proc)
    assert report["check_mode"] and not cordoned(api)
    assert {n: (r["action"], r["outcome"]) for n, r in rows(report).items()} == {
        "stateful-a": ("migrate", "planned"), "stateful-b": ("migrate", "planned"),
        plain.metadata.name: ("evict", "planned")}
    assert all(rows(report)[n]["target"] == TARGET for n in sources)

    proc, report, elapsed = drain(drain_parallel=2, drain_bwlimit_kib=200000)
    assert proc.returncode == 0, explain(proc)
    assert re.search(r"Drain \| Migrate 1-2/2 off %s: drain-test/stateful-\w -> %s" % (SOURCE, TARGET), proc.stdout)
    assert report["ok"] and report["empty"] and report["cordoned"] and not report["check_mode"]
    table = rows(report)
    assert report["totals"]["migrated"] == 2 and report["totals"]["evicted"] == 1, report["totals"]
    assert table[plain.metadata.name]["outcome"] == "evicted"
    for name, source in sources.items():
        row = table[name]
        assert row["outcome"] == "migrated" and row["target"] == TARGET and row["strategy"] in ("cold", "postcopy")
        assert row["downtime_s"] > 0 and row["bytes_sent"] > 0 and os.path.exists(row["report_file"]), row
        # The state went with it: the new pod runs on w2 and its counter carries on, one start.
        moved = api.read_namespaced_pod(row["new_name"], NS)
        assert moved.spec.node_name == TARGET and moved.status.container_statuses[0].restart_count == 0
        after = wait_ticks(TARGET, tick_log(moved), before[name]["ticks"] + 50)
        assert after["starts"] == 1 and after["counter_resets"] == [], after
        assert after["ticks"] > before[name]["ticks"]
        with pytest.raises(ApiException):
            api.read_namespaced_pod(name, NS)
        print("\n%s: %s, downtime %.3f s (workload gap %.3f s), %d bytes" % (
            name, row["strategy"], row["downtime_s"], after["max_gap_s"], row["bytes_sent"]))
    # The Deployment's pod was evicted and rescheduled on w2 (w1 is cordoned); w1 stays cordoned.
    deadline = time.monotonic() + 60
    while not running_of(api, "plain") and time.monotonic() < deadline:
        time.sleep(1)
    assert [p.spec.node_name for p in running_of(api, "plain")] == [TARGET]
    assert cordoned(api)
    print("drain of %s: %.1f s (playbook), %.1f s (report)" % (SOURCE, elapsed, report["duration_s"]))

    # A second run continues with what is left: nothing.
    proc, report, _ = drain()
    assert proc.returncode == 0, explain(proc)
    assert report["pods"] == [] and report["ok"]
    assert "nothing left on the node to migrate or evict" in proc.stdout

    # Undo uncordons.
    proc, _, _ = drain(drain_state="undo")
    assert proc.returncode == 0, explain(proc)
    assert not cordoned(api)


def test_a_budget_that_forbids_eviction_is_waited_for_and_reported_without_failing_the_migration(ns):
    api = ns
    source = workload(api, "stateful-c")
    held = deployment(api, "held", max_unavailable=0)
    before = wait_ticks(SOURCE, tick_log(source), 50)
    proc, report, elapsed = drain(drain_eviction_timeout=15)
    assert proc.returncode != 0
    assert "the drain of %s is not finished (blocked)" % SOURCE in proc.stdout, explain(proc)
    table = rows(report)
    assert table["stateful-c"]["outcome"] == "migrated", table
    row = table[held.metadata.name]
    assert row["outcome"] == "blocked" and row["pdb"] == "held-pdb", row
    assert row["seconds"] >= 10
    assert not report["ok"] and report["cordoned"] and cordoned(api)
    # The held pod still runs on w1; the migrated one carries on on w2.
    assert [p.metadata.name for p in running_of(api, "held")] == [held.metadata.name]
    moved = api.read_namespaced_pod(table["stateful-c"]["new_name"], NS)
    after = wait_ticks(TARGET, tick_log(moved), before["ticks"] + 50)
    assert after["starts"] == 1 and after["counter_resets"] == [], after
    print("\nblocked drain: %.1f s" % elapsed)
    proc, _, _ = drain(drain_state="undo")
    assert proc.returncode == 0 and not cordoned(api)


def test_a_drain_stopped_mid_way_loses_no_pod_and_a_rerun_finishes_it(ns, tmp_path):
    """The drain is killed once its first migration started; the rerun moves what is left.

    The rerun is a rolling-maintenance run: its maintenance task file runs once the node is empty,
    then the node is uncordoned.
    """
    api = ns
    names = ("stateful-d", "stateful-e")
    sources = {name: workload(api, name) for name in names}
    before = {name: wait_ticks(SOURCE, tick_log(pod), 50) for name, pod in sources.items()}
    argv = playbook_argv(DRAIN, {"drain_nodes": SOURCE, "drain_namespaces": NS}, LAB_INVENTORY)
    env = dict(ansible_env(), PYTHONUNBUFFERED="1")
    run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen = []
    for line in run.stdout:
        seen.append(line)
        if "Drain | Migrate 1/2 off" in line:
            break
    time.sleep(2)
    run.terminate()
    run.wait(timeout=60)
    assert any("Drain | Migrate 1/2 off" in line for line in seen), "".join(seen[-40:])
    assert not any("Drain | Migrate 2/2 off" in line for line in seen)

    # The migration it started ends on its own (commit or roll back): wait for its migrate.yml run.
    deadline = time.monotonic() + 300
    while subprocess.run(["pgrep", "-f", "playbooks/migrate.yml.*%s" % NS], capture_output=True,
                         check=False).returncode == 0:
        assert time.monotonic() < deadline, "a migration still runs after 300 s"
        time.sleep(2)
    assert not any("podmig.live/migration" in (p.metadata.annotations or {}) for p in api.list_namespaced_pod(NS).items)

    marker = tmp_path / "maintained"
    tasks = tmp_path / "maintenance.yml"
    tasks.write_text("- name: Maintenance | Note the node\n"
                     "  ansible.builtin.copy:\n"
                     "    dest: %s\n"
                     "    content: \"{{ drain_node }} {{ lookup('pipe', 'date +%%s.%%N') }}\"\n"
                     "    mode: \"0644\"\n" % marker, encoding="utf-8")
    proc, report, _ = drain(drain_maintenance_tasks=str(tasks), drain_uncordon_after=True)
    assert proc.returncode == 0, explain(proc)
    assert report["ok"] and report["empty"]
    # The second pod's migration never started: the rerun moved it (the first one was moved by the
    # migration the stopped drain had started, or, had that rolled back, by the rerun too).
    assert rows(report)["stateful-e"]["outcome"] == "migrated", rows(report)
    # The maintenance ran on the drained node, after the report was written; then w1 was uncordoned.
    assert marker.read_text(encoding="utf-8").split()[0] == SOURCE
    assert float(marker.read_text(encoding="utf-8").split()[1]) >= report["finished_at"]
    assert not cordoned(api)
    # Each pod runs exactly once, on w2, and carried its state on (one start, no counter reset).
    for name in names:
        running = running_of(api, name)
        assert len(running) == 1 and running[0].spec.node_name == TARGET, [
            (p.metadata.name, p.spec.node_name) for p in running]
        after = wait_ticks(TARGET, tick_log(running[0]), before[name]["ticks"] + 50)
        assert after["starts"] == 1 and after["counter_resets"] == [], after
    print("\nstopped drain: the rerun moved %s" % sorted(rows(report)))
