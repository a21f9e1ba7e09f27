# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of a node's drain plan (module_utils/migration/drain_plan.py): pure API dicts, no cluster."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ansible_collections.podmig.live.plugins.module_utils.migration import drain_plan as dp

IMAGE = "localhost/podmig/workload:abc"


def node(name, cpu="2", memory="4Gi", pods="110", labels=None, taints=None, ready=True, cordoned=False,
         images=(IMAGE,)):
    return {
        "metadata": {"name": name, "labels": dict({"kubernetes.io/hostname": name}, **(labels or {}))},
        "spec": dict({"taints": taints or []}, **({"unschedulable": True} if cordoned else {})),
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletReady"}],
                   "images": [{"names": [i]} for i in images]},
    }


def pod(name, node_name="w1", namespace="ns", cpu="100m", memory="32Mi", opt_in=False, owner=None, labels=None,
        phase="Running", **spec):
    meta = {"name": name, "namespace": namespace, "labels": labels or {}, "annotations": {}}
    if opt_in:
        meta["annotations"][dp.ANNOTATION_OPT_IN] = "true"
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "uid": "u", "controller": True}]
    return {
        "metadata": meta,
        "spec": dict({"nodeName": node_name, "containers": [{"name": "app", "image": IMAGE, "resources": {
            "requests": {"cpu": cpu, "memory": memory}}}]}, **spec),
        "status": {"phase": phase, "containerStatuses": [{"name": "app", "state": {"running": {}}}]},
    }


def plan(pods, nodes=None, **request):
    nodes = nodes if nodes is not None else [node("w1"), node("w2"), node("w3")]
    return dp.plan_drain(dict({"node": "w1"}, **request), {"nodes": nodes, "pods": pods})


def action_of(result, name):
    return next(p for p in result["pods"] if p["name"] == name)


# ------------------------------------------------------------------------------------ quantities
def test_pod_requests_sum_containers_and_take_init_containers_as_a_floor():
    p = pod("a", cpu="250m", memory="64Mi")
    p["spec"]["containers"].append({"name": "b", "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}}})
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}]
    need = dp.pod_requests(p)
    assert need["cpu"] == Decimal(2)                  # the init container's 2 cores exceed 0.75
    assert need["memory"] == Decimal((64 + 1024) << 20)
    assert need["pods"] == 1


def test_free_resources_subtract_running_pods_but_not_finished_ones():
    pods = [pod("a", node_name="w2", memory="1Gi", cpu="500m"), pod("done", node_name="w2", memory="2Gi",
                                                                    phase="Succeeded"),
            pod("elsewhere", node_name="w3", memory="3Gi")]
    free = dp.free_resources(node("w2", memory="4Gi", cpu="2", pods="10"), pods)
    assert free == {"cpu": Decimal("1.5"), "memory": Decimal(3 << 30), "pods": Decimal(9)}


def test_show_quantity():
    assert dp.show_quantity("cpu", Decimal("0.25")) == "250m"
    assert dp.show_quantity("memory", Decimal(48 << 20)) == "48Mi"
    assert dp.show_quantity("memory", Decimal(3 << 30)) == "3.0Gi"


# ------------------------------------------------------------------------------------ selectors
@pytest.mark.parametrize("selector,labels,expected", [
    ("app=db", {"app": "db"}, True),
    ("app==db", {"app": "web"}, False),
    ("app!=db", {}, True),
    ("app!=db", {"app": "db"}, False),
    ("tier in (a, b),app", {"tier": "b", "app": "x"}, True),
    ("tier notin (a,b)", {"tier": "a"}, False),
    ("!legacy", {"legacy": "1"}, False),
    ("!legacy,app=db", {"app": "db"}, True),
])
def test_label_selectors(selector, labels, expected):
    assert dp.selector_matches(labels, selector) is expected


def test_a_bad_selector_is_an_error():
    with pytest.raises(ValueError, match="cannot parse label selector term"):
        dp.parse_selector("app in a,b)")


@pytest.mark.parametrize("operator,values,labels,expected", [
    ("In", ["x"], {"k": "x"}, True), ("NotIn", ["x"], {"k": "x"}, False), ("Exists", [], {}, False),
    ("DoesNotExist", [], {}, True), ("Gt", ["3"], {"k": "4"}, True), ("Lt", ["3"], {"k": "4"}, False),
    ("Gt", ["3"], {"k": "many"}, False),
])
def test_match_expressions(operator, values, labels, expected):
    assert dp.expression_matches(labels, "k", operator, values) is expected


# ------------------------------------------------------------------------------------ classification
def test_classification_gives_every_pod_an_action_and_a_reason():
    pods = [
        pod("db", opt_in=True, owner=("ReplicaSet", "db-1")),
        pod("web", owner=("ReplicaSet", "web-1")),
        pod("agent", owner=("DaemonSet", "agent")),
        pod("kube-proxy-w1", owner=("Node", "w1")),
        pod("job", owner=("Job", "j"), phase="Succeeded"),
    ]
    pods[3]["metadata"]["annotations"][dp.ANNOTATION_MIRROR] = "abc"
    result = plan(pods)
    assert result["ok"], result["refusals"]
    assert {p["name"]: p["action"] for p in result["pods"]} == {
        "db": "migrate", "web": "evict", "agent": "leave", "kube-proxy-w1": "leave", "job": "leave"}
    assert "DaemonSet agent" in action_of(result, "agent")["reason"]
    assert "mirror pod" in action_of(result, "kube-proxy-w1")["reason"]
    assert "ReplicaSet/web-1 recreates it" in action_of(result, "web")["reason"]
    assert [p["name"] for p in result["migrate"]] == ["db"] and [p["name"] for p in result["evict"]] == ["web"]
    assert action_of(result, "db")["requests"] == {"cpu": "100m", "memory": "32Mi"}


def test_pods_on_other_nodes_are_not_in_the_plan():
    result = plan([pod("a", node_name="w2", opt_in=True), pod("b", owner=("ReplicaSet", "r"))])
    assert [p["name"] for p in result["pods"]] == ["b"]


def test_the_selector_opts_pods_in_too():
    result = plan([pod("db", labels={"app": "db"}), pod("web", labels={"app": "web"}, owner=("ReplicaSet", "r"))],
                  selector="app=db")
    assert action_of(result, "db")["action"] == "migrate"
    assert action_of(result, "web")["action"] == "evict"


def test_an_opted_in_pod_podmig_cannot_move_is_refused_with_the_reason():
    result = plan([pod("netpod", opt_in=True, hostNetwork=True, owner=("ReplicaSet", "r")),
                   pod("sts-0", opt_in=True, owner=("StatefulSet", "sts"))])
    assert not result["ok"]
    assert action_of(result, "netpod")["action"] == "refused"
    assert "hostNetwork: true" in action_of(result, "netpod")["reason"]
    assert "StatefulSet sts" in action_of(result, "sts-0")["reason"]
    assert len(result["refusals"]) == 2
    assert result["refusals"][0].startswith("ns/netpod: opted in but cannot be migrated: hostNetwork: true")


def test_drain_evict_refused_evicts_refused_pods_that_have_a_controller():
    result = plan([pod("netpod", opt_in=True, hostNetwork=True, owner=("ReplicaSet", "r")),
                   pod("bare", opt_in=True, hostPID=True)], evict_refused=True)
    assert action_of(result, "netpod")["action"] == "evict"
    assert "drain_evict_refused" in action_of(result, "netpod")["reason"]
    # A bare pod would be lost: evict_refused alone is not enough.
    assert action_of(result, "bare")["action"] == "refused" and not result["ok"]


def test_a_pod_being_migrated_or_not_running_is_refused():
    busy = pod("busy", opt_in=True)
    busy["metadata"]["annotations"]["podmig.live/migration"] = "abcd1234"
    pending = pod("pending", opt_in=True, phase="Pending")
    pending["status"]["containerStatuses"] = [{"name": "app", "state": {"waiting": {}}}]
    result = plan([busy, pending])
    assert "migration abcd1234 holds it" in action_of(result, "busy")["reason"]
    assert "not running (phase Pending" in action_of(result, "pending")["reason"]


def test_bare_pods_not_opted_in_are_refused_unless_forced():
    result = plan([pod("lonely")])
    assert not result["ok"]
    assert "nothing would recreate it" in action_of(result, "lonely")["reason"]
    forced = plan([pod("lonely")], force=True)
    assert forced["ok"] and action_of(forced, "lonely")["action"] == "evict"
    assert "evicted for good" in action_of(forced, "lonely")["reason"]


def test_drain_namespaces_limit_what_is_touched():
    result = plan([pod("db", opt_in=True), pod("lonely", namespace="other")], namespaces=["ns"])
    assert result["ok"], result["refusals"]
    assert action_of(result, "db")["action"] == "migrate"
    assert action_of(result, "lonely")["action"] == "leave"
    assert "namespace other is not in drain_namespaces" in action_of(result, "lonely")["reason"]


def test_opt_in_annotation_must_say_true():
    result = plan([pod("maybe", owner=("ReplicaSet", "r"))])
    result_pods = result["pods"]
    assert result_pods[0]["action"] == "evict"
    no = pod("no", owner=("ReplicaSet", "r"))
    no["metadata"]["annotations"][dp.ANNOTATION_OPT_IN] = "false"
    assert plan([no])["pods"][0]["action"] == "evict"


# ------------------------------------------------------------------------------------ placement
def test_never_the_drained_node_nor_cordoned_or_not_ready_nodes():
    result = plan([pod("db", opt_in=True)], nodes=[node("w1"), node("w2", cordoned=True), node("w3", ready=False)])
    assert not result["ok"]
    reason = action_of(result, "db")["reason"]
    assert reason.startswith("no node can take it: ")
    assert "w1: the node being drained" in reason
    assert "w2: cordoned (spec.unschedulable)" in reason
    assert "w3: not Ready (KubeletReady" in reason


def test_largest_first_each_to_the_node_with_most_memory_left():
    pods = [pod("small", opt_in=True, memory="100Mi"), pod("big", opt_in=True, memory="3Gi"),
            pod("mid", opt_in=True, memory="1Gi")]
    result = plan(pods, nodes=[node("w1"), node("w2", memory="4Gi"), node("w3", memory="3500Mi")])
    assert result["ok"], result["refusals"]
    assert [(p["name"], p["target"]) for p in result["migrate"]] == [
        ("big", "w2"),      # w2 had most room
        ("mid", "w3"),      # w3 now has 3500Mi, w2 1Gi
        ("small", "w3")]    # w3 2476Mi left, w2 1024Mi


def test_capacity_refusal_names_each_node_and_the_shortfall():
    existing = pod("resident", node_name="w2", memory="3Gi", owner=("ReplicaSet", "r"))
    result = plan([pod("huge", opt_in=True, memory="64Gi"), pod("fits", opt_in=True, memory="512Mi"), existing],
                  nodes=[node("w1"), node("w2")])
    assert not result["ok"]
    assert [p["name"] for p in result["refused"]] == ["huge"]
    assert "w2: needs memory 64.0Gi, 1.0Gi free" in action_of(result, "huge")["reason"]
    # The pod that fits is planned, and sees the room the resident pod takes.
    assert action_of(result, "fits")["target"] == "w2"
    assert result["refusals"] == ["ns/huge: " + action_of(result, "huge")["reason"]]


def test_placement_accounts_for_pods_placed_before():
    pods = [pod("a", opt_in=True, cpu="1500m"), pod("b", opt_in=True, cpu="1")]
    result = plan(pods, nodes=[node("w1"), node("w2", cpu="2")])
    assert action_of(result, "a")["target"] == "w2"
    assert action_of(result, "b")["action"] == "refused"
    assert "needs cpu 1, 500m free" in action_of(result, "b")["reason"]


def test_pod_count_is_a_resource_too():
    result = plan([pod("a", opt_in=True)], nodes=[node("w1"), node("w2", pods="1")],)
    # nothing else runs on w2: room for one
    assert action_of(result, "a")["target"] == "w2"
    full = plan([pod("a", opt_in=True), pod("x", node_name="w2", owner=("ReplicaSet", "r"))],
                nodes=[node("w1"), node("w2", pods="1")])
    assert "needs pods 1, 0 free" in action_of(full, "a")["reason"]


def test_node_selector():
    result = plan([pod("db", opt_in=True, nodeSelector={"disk": "ssd"})],
                  nodes=[node("w1"), node("w2"), node("w3", labels={"disk": "ssd"})])
    assert action_of(result, "db")["target"] == "w3"
    refused = plan([pod("db", opt_in=True, nodeSelector={"disk": "ssd"})], nodes=[node("w1"), node("w2")])
    assert "w2: nodeSelector disk=ssd does not match" in action_of(refused, "db")["reason"]


def test_required_node_affinity_terms_are_ored_and_expressions_anded():
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                              {"key": "gpu", "operator": "DoesNotExist"}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["w4"]}]},
    ]}}}
    nodes = [node("w1"), node("w2", labels={"zone": "a", "gpu": "yes"}), node("w3", labels={"zone": "b"}),
             node("w4", memory="1Gi")]
    result = plan([pod("db", opt_in=True, affinity=affinity)], nodes=nodes)
    assert action_of(result, "db")["target"] == "w4"      # by name (matchFields), w2 has a gpu label
    nodes[3]["metadata"]["name"] = "w5"
    refused = plan([pod("db", opt_in=True, affinity=affinity)], nodes=nodes)
    assert refused["refused"] and "w2: required node affinity does not match" in refused["refusals"][0]


def test_preferred_affinity_does_not_restrict():
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]}}]}}
    assert plan([pod("db", opt_in=True, affinity=affinity)])["ok"]


@pytest.mark.parametrize("tolerations,expected", [
    ([], False),
    ([{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}], True),
    ([{"key": "dedicated", "value": "web"}], False),
    ([{"key": "dedicated", "operator": "Exists"}], True),
    ([{"operator": "Exists"}], True),
    ([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}], False),
])
def test_taints_need_tolerations(tolerations, expected):
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    assert dp.tolerates(tolerations, taint) is expected
    result = plan([pod("db", opt_in=True, tolerations=tolerations)],
                  nodes=[node("w1"), node("w2", taints=[taint])])
    assert result["ok"] is expected
    if not expected:
        assert "w2: taint dedicated=db:NoSchedule not tolerated" in result["refusals"][0]


def test_prefer_no_schedule_taints_do_not_block():
    result = plan([pod("db", opt_in=True)],
                  nodes=[node("w1"), node("w2", taints=[{"key": "soft", "effect": "PreferNoSchedule"}])])
    assert action_of(result, "db")["target"] == "w2"


def test_a_target_without_the_image_is_not_chosen():
    result = plan([pod("db", opt_in=True)], nodes=[node("w1"), node("w2", images=()), node("w3")])
    assert action_of(result, "db")["target"] == "w3"
    refused = plan([pod("db", opt_in=True)], nodes=[node("w1"), node("w2", images=())])
    assert "lacks image %s" % IMAGE in refused["refusals"][0]


def test_an_unknown_node_is_refused():
    result = plan([], nodes=[node("w2")])
    assert result["refusals"] == ["node w1 does not exist"]


def test_nothing_left_to_do_is_an_ok_empty_plan():
    result = plan([pod("agent", owner=("DaemonSet", "agent"))])
    assert result["ok"] and result["migrate"] == [] and result["evict"] == []
    empty = dp.drain_report(plan([]), [], [], {"started_at": 1, "finished_at": 2})
    assert empty["ok"] and empty["empty"] and empty["totals"]["pods"] == 0
    assert "nothing left on the node to migrate or evict" in dp.drain_summary(empty)[1]


# ------------------------------------------------------------------------------------ report
def _plan_for_report():
    return plan([pod("db", opt_in=True, memory="64Mi"), pod("cache", opt_in=True),
                 pod("web", owner=("ReplicaSet", "w")), pod("api", owner=("ReplicaSet", "a")),
                 pod("agent", owner=("DaemonSet", "agent"))])


def test_report_counts_each_outcome_and_keeps_downtime_and_bytes():
    migrations = [
        {"namespace": "ns", "name": "db", "target": "w2", "rc": 0, "report_file": "/r/db.json",
         "report": {"outcome": "migrated", "strategy": "postcopy", "pause_s": 0.7, "bytes_sent": 1000,
                    "shell_pod": "db-mig-1", "total_s": 20.0}},
        {"namespace": "ns", "name": "cache", "target": "w3", "rc": 2,
         "report": {"outcome": "rolled_back", "strategy": "cold", "error": "restore failed", "bytes_sent": 10}},
    ]
    evictions = [{"namespace": "ns", "name": "web", "outcome": "evicted", "seconds": 3.0},
                 {"namespace": "ns", "name": "api", "outcome": "blocked", "pdb": "api-pdb",
                  "message": "The disruption budget api-pdb needs 1 healthy pods"}]
    report = dp.drain_report(_plan_for_report(), migrations, evictions,
                             {"started_at": 100.0, "finished_at": 160.5, "cordoned": True})
    rows = {p["name"]: p for p in report["pods"]}
    assert rows["db"]["outcome"] == "migrated" and rows["db"]["downtime_s"] == 0.7
    assert rows["db"]["strategy"] == "postcopy" and rows["db"]["new_name"] == "db-mig-1"
    assert rows["cache"]["outcome"] == "rolled_back" and rows["cache"]["error"] == "restore failed"
    assert rows["api"]["pdb"] == "api-pdb" and rows["agent"]["outcome"] == "left"
    assert report["totals"] == {"migrated": 1, "rolled_back": 1, "evicted": 1, "blocked": 1, "left": 1,
                                "pods": 5, "bytes_sent": 1010, "max_downtime_s": 0.7}
    assert report["duration_s"] == 60.5 and not report["ok"] and not report["empty"]
    lines = dp.drain_summary(report)
    assert lines[0].startswith("drain of w1: NOT done")
    assert any("blocked" in line and "PodDisruptionBudget api-pdb" in line for line in lines)
    assert any("migrated" in line and "ns/db" in line and "postcopy, downtime 0.7 s, 1000 bytes" in line
               for line in lines)


def test_report_of_a_complete_drain_is_ok_and_empty():
    migrations = [{"namespace": "ns", "name": n, "rc": 0, "report": {"outcome": "migrated", "pause_s": s}}
                  for n, s in (("db", 1.5), ("cache", 0.5))]
    evictions = [{"namespace": "ns", "name": "web", "outcome": "evicted"},
                 {"namespace": "ns", "name": "api", "outcome": "gone"}]
    report = dp.drain_report(_plan_for_report(), migrations, evictions, {"started_at": 1, "finished_at": 2})
    assert report["ok"] and report["empty"] and report["totals"]["max_downtime_s"] == 1.5


def test_report_in_check_mode_says_planned():
    report = dp.drain_report(_plan_for_report(), [], [{"namespace": "ns", "name": "web", "outcome": "would_evict"}],
                             {"check_mode": True})
    assert {p["outcome"] for p in report["pods"]} == {"planned", "left"}
    assert "migrate -> w2" in "\n".join(dp.drain_summary(report))
    assert report["ok"] and not report["empty"]
    assert "check mode" in dp.drain_summary(report)[0]


def test_report_of_a_refused_plan():
    result = plan([pod("huge", opt_in=True, memory="1Ti")])
    report = dp.drain_report(result, [], [], {})
    assert not report["ok"] and report["totals"]["refused"] == 1
    assert report["refusals"] == result["refusals"]


def test_a_migration_that_did_not_run_is_not_attempted():
    report = dp.drain_report(_plan_for_report(), [], [], {})
    assert {p["name"]: p["outcome"] for p in report["pods"]}["db"] == "not_attempted"
    assert not report["ok"]
