# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the pod migration plan (module_utils/migration/pod_plan.py) over API-shaped objects."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.podmig.live.plugins.module_utils.migration import pod_plan
from ansible_collections.podmig.live.plugins.module_utils.migration.pod_plan import (
    ANNOTATION_MIGRATION, ANNOTATION_RESTORE_FROM, DELETION_COST, LABEL_SHELL, READINESS_GATE, TEMPLATE_HASH,
    missing_images, node_ready, plan_pod_migration, shell_pod_manifest, shell_pod_name)

from test_migration_plan import criu_facts  # noqa: E402 (the same facts the container plan uses)

IMAGE = "localhost/podmig/workload:1"


def node(name, ready=True, unschedulable=False, images=(IMAGE,)):
    return {"metadata": {"name": name},
            "spec": {"unschedulable": True} if unschedulable else {},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": "True" if ready else "False",
                                       "reason": "KubeletReady" if ready else "KubeletNotReady",
                                       "message": "" if ready else "container runtime network not ready"}],
                       "images": [{"names": [n + "@sha256:abc", n]} for n in images]}}


def pod(name="app", node_name="w1", phase="Running", owner=None, volumes=None, **spec_extra):
    meta = {"name": name, "namespace": "default", "uid": "u-1",
            "labels": {"app": "demo", TEMPLATE_HASH: "5d8f"} if owner else {"app": "demo"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "hpc"}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "uid": "o-1", "controller": True}]
    spec = {"nodeName": node_name, "restartPolicy": "Always",
            "initContainers": [{"name": "init", "image": IMAGE}],
            "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "Always",
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                            "lifecycle": {"postStart": {"exec": {"command": ["true"]}},
                                          "preStop": {"exec": {"command": ["true"]}}},
                            "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                             {"name": "kube-api-access-x1y2", "mountPath": "/var/run/secrets"}]}],
            "volumes": (volumes if volumes is not None else [{"name": "data", "emptyDir": {}}])
            + [{"name": "kube-api-access-x1y2", "projected": {"sources": []}}]}
    spec.update(spec_extra)
    return {"metadata": meta, "spec": spec,
            "status": {"phase": phase, "containerStatuses": [
                {"name": "main", "state": {"running": {}} if phase == "Running" else {"waiting": {}}}]}}


def facts(p=None, nodes=None, claims=None, owner_objects=None, criu=None):
    return {"pod": pod() if p is None else p,
            "nodes": nodes if nodes is not None else {"w1": node("w1"), "w2": node("w2")},
            "claims": claims or {}, "owner_objects": owner_objects or {},
            "criu": criu if criu is not None else {"w1": criu_facts(soft_dirty=False),
                                                   "w2": criu_facts(soft_dirty=False)}}


REQUEST = {"namespace": "default", "pod": "app", "target_node": "w2", "strategy": "auto"}


def refused(result, name):
    return [c for c in result["checks"] if c["name"] == name and not c["ok"]]


def test_a_running_bare_pod_between_ready_nodes_is_planned_with_a_working_strategy():
    result = plan_pod_migration(REQUEST, facts())
    assert result["ok"], result["refusals"]
    assert result["source_node"] == "w1" and result["containers"] == ["main"]
    assert result["owner"]["kind"] == ""
    # auto takes the first pod strategy both nodes support
    assert result["strategy"] == "postcopy" and "postcopy/delta/cold" in result["reason"]


def test_an_unknown_pod_is_refused_by_name():
    result = plan_pod_migration(dict(REQUEST, pod="nope"), facts(p={}))
    assert not result["ok"]
    assert result["refusals"][0] == "pod exists: pod default/nope does not exist"


@pytest.mark.parametrize("target,nodes,expect", [
    ("w1", None, "already runs on w1"),
    ("w3", None, "node w3: no such node"),
    ("w2", {"w1": node("w1"), "w2": node("w2", ready=False)}, "not Ready (KubeletNotReady"),
    ("w2", {"w1": node("w1"), "w2": node("w2", unschedulable=True)}, "cordoned"),
])
def test_bad_targets_are_refused_with_the_reason(target, nodes, expect):
    result = plan_pod_migration(dict(REQUEST, target_node=target), facts(nodes=nodes))
    assert not result["ok"]
    assert any(expect in r for r in result["refusals"]), result["refusals"]


def test_a_cordoned_source_is_fine_it_is_what_a_drain_does():
    result = plan_pod_migration(REQUEST, facts(nodes={"w1": node("w1", unschedulable=True), "w2": node("w2")}))
    assert result["ok"], result["refusals"]


def test_a_pod_that_is_not_running_or_already_migrating_is_refused():
    pending = plan_pod_migration(REQUEST, facts(p=pod(phase="Pending")))
    assert refused(pending, "pod running")
    busy = pod()
    busy["metadata"]["annotations"][ANNOTATION_MIGRATION] = "abcd1234"
    result = plan_pod_migration(REQUEST, facts(p=busy))
    assert "migration abcd1234 already holds this pod" in " ".join(result["refusals"])


def test_host_namespaces_devices_and_gpus_are_named_in_one_refusal():
    p = pod(hostNetwork=True, hostPID=True)
    p["spec"]["volumes"].append({"name": "dev", "hostPath": {"path": "/dev/fuse"}})
    p["spec"]["containers"][0]["resources"]["limits"] = {"nvidia.com/gpu": "1", "hugepages-2Mi": "4Mi"}
    result = plan_pod_migration(REQUEST, facts(p=p))
    [check] = refused(result, "portable pod")
    for word in ("hostNetwork: true", "hostPID: true", "hostPath volume dev (/dev/fuse)", "nvidia.com/gpu"):
        assert word in check["detail"]
    assert "hugepages" not in check["detail"]


def test_claims_move_only_when_both_nodes_can_mount_them():
    vols = [{"name": "shared", "persistentVolumeClaim": {"claimName": "rwx"}},
            {"name": "own", "persistentVolumeClaim": {"claimName": "rwo"}},
            {"name": "gone", "persistentVolumeClaim": {"claimName": "missing"}}]
    claims = {"rwx": {"status": {"accessModes": ["ReadWriteMany"]}},
              "rwo": {"spec": {"accessModes": ["ReadWriteOnce"]}}}
    [check] = refused(plan_pod_migration(REQUEST, facts(p=pod(volumes=vols), claims=claims)), "volumes can follow")
    assert "claim rwo is ReadWriteOnce" in check["detail"]
    assert "claim missing not found" in check["detail"]
    assert "rwx" not in check["detail"]


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet", "Job", "CustomThing"])
def test_owners_podmig_cannot_hand_over_are_refused_with_why(kind):
    result = plan_pod_migration(REQUEST, facts(p=pod(owner=(kind, "x"))))
    [check] = refused(result, "owner supported")
    assert check["detail"].startswith("%s x: " % kind)


def test_a_replicaset_pod_names_its_deployment():
    rs = {"metadata": {"name": "web-5d8f", "ownerReferences": [{"kind": "Deployment", "name": "web",
                                                                 "controller": True, "uid": "d"}]}}
    result = plan_pod_migration(REQUEST, facts(p=pod(owner=("ReplicaSet", "web-5d8f")),
                                               owner_objects={"ReplicaSet": rs}))
    assert result["ok"], result["refusals"]
    assert result["owner"] == {"kind": "ReplicaSet", "name": "web-5d8f", "uid": "o-1", "deployment": "web"}


def test_images_missing_on_the_target_are_refused():
    nodes = {"w1": node("w1"), "w2": node("w2", images=("localhost/podmig/pause:3.10",))}
    result = plan_pod_migration(REQUEST, facts(nodes=nodes))
    assert "node w2 lacks localhost/podmig/workload:1" in " ".join(result["refusals"])
    assert missing_images(pod(), node("w2")) == []


def test_criu_problems_and_an_impossible_strategy_are_refused_before_anything_is_frozen():
    broken = {"w1": criu_facts(soft_dirty=False), "w2": criu_facts(check_ok=False, message="vdso: bad bounds")}
    result = plan_pod_migration(REQUEST, facts(criu=broken))
    assert "CRIU usable on target: w2: vdso: bad bounds" in result["refusals"]
    no_uffd = {"w1": criu_facts(soft_dirty=False), "w2": criu_facts(soft_dirty=False, uffd=False)}
    postcopy = plan_pod_migration(dict(REQUEST, strategy="postcopy"), facts(criu=no_uffd))
    assert any(r.startswith("strategy: ") and "UFFD is not supported" in r for r in postcopy["refusals"])
    assert plan_pod_migration(REQUEST, facts(criu=no_uffd))["strategy"] == "delta"


def test_precopy_is_refused_for_pods_with_the_alternatives():
    result = plan_pod_migration(dict(REQUEST, strategy="precopy"), facts())
    assert "strategy: precopy is not available for pods yet: podmig moves pods with cold or delta or postcopy" in \
        " ".join(result["refusals"])


def test_delta_copy_rounds_are_planned_for_pods():
    result = plan_pod_migration(dict(REQUEST, strategy="delta"), facts())
    assert result["refusals"] == [] and result["strategy"] == "delta", result


def test_every_refusal_is_reported_at_once():
    p = pod(phase="Pending", hostIPC=True, owner=("StatefulSet", "db"))
    result = plan_pod_migration(dict(REQUEST, target_node="w1"), facts(p=p))
    names = {r.split(":")[0] for r in result["refusals"]}
    assert {"different nodes", "pod running", "portable pod", "owner supported"} <= names


def test_node_ready_reads_the_ready_condition():
    assert node_ready(node("a")) == (True, "Ready")
    assert node_ready(None) == (False, "no such node")
    assert node_ready({"status": {}})[0] is False


def test_shell_pod_name_fits_and_stays_a_dns_label():
    assert shell_pod_name("app", "0123abcd") == "app-mig-0123abcd"
    long = shell_pod_name("x" * 70, "0123abcd")
    assert len(long) == 63 and long.endswith("-mig-0123abcd")
    assert shell_pod_name("a" * 49 + "-" + "b" * 20, "0123abcd").count("--") == 0


def test_the_shell_pod_keeps_what_the_process_sees_and_drops_what_already_ran():
    source = pod()
    shell = shell_pod_manifest(copy.deepcopy(source), "w2", "0123abcd", "/var/lib/podmig/pods/0123abcd")
    meta, spec = shell["metadata"], shell["spec"]
    assert meta["name"] == "app-mig-0123abcd" and meta["namespace"] == "default"
    assert meta["labels"] == {"app": "demo", LABEL_SHELL: "0123abcd"}  # Services still select it
    assert meta["annotations"][ANNOTATION_RESTORE_FROM] == "/var/lib/podmig/pods/0123abcd"
    assert meta["annotations"]["team"] == "hpc"
    assert not any(k.startswith("kubectl.kubernetes.io/") for k in meta["annotations"])
    assert spec["nodeName"] == "w2" and spec["hostname"] == "app"
    assert spec["readinessGates"] == [{"conditionType": READINESS_GATE}]
    assert "initContainers" not in spec
    [main] = spec["containers"]
    assert main["lifecycle"] == {"preStop": {"exec": {"command": ["true"]}}}
    assert main["imagePullPolicy"] == "IfNotPresent"
    assert main["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]  # same paths: CRIU maps by destination
    assert spec["volumes"] == [{"name": "data", "emptyDir": {}}]
    assert main["resources"] == source["spec"]["containers"][0]["resources"]  # same QoS class
    assert source["spec"]["containers"][0]["lifecycle"].get("postStart"), "the source object is not changed"


def test_a_replicaset_shell_is_hidden_from_its_replicaset_until_adopted():
    shell = shell_pod_manifest(pod(owner=("ReplicaSet", "web-5d8f")), "w2", "0123abcd", "/var/lib/podmig/x",
                               owner={"kind": "ReplicaSet", "name": "web-5d8f"})
    assert TEMPLATE_HASH not in shell["metadata"]["labels"]
    assert "ownerReferences" not in shell["metadata"]
    assert shell["metadata"]["annotations"][DELETION_COST] == str(2 ** 31 - 1)


def test_migration_ids_are_stable_and_short():
    a = pod_plan.migration_id("default", "app", "u-1", "2026-11-29T12:00:00Z")
    assert a == pod_plan.migration_id("default", "app", "u-1", "2026-11-29T12:00:00Z")
    assert a != pod_plan.migration_id("default", "app", "u-2", "2026-11-29T12:00:00Z")
    assert len(a) == 8 and a.isalnum()
