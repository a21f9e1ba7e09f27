# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Refuse a pod migration early, and describe the shell pod that will receive it.

Works on API objects as kubernetes.core.k8s_info returns them (plain dicts): the pod, its node
and the target node, the pod's owner chain and its claims, plus criu_info facts of both nodes.
Every failed check is reported at once, each with its reason; nothing is frozen before all pass.
The rules follow ../shared/notes/k8s-identity.md (verified on the lab cluster where the tests say so).
"""

from __future__ import annotations

import hashlib
from typing import Any

from ansible_collections.podmig.live.plugins.module_utils.migration.plan import _check, check_strategy, finish
from ansible_collections.podmig.live.plugins.module_utils.strategy import DEFAULT_AUTO_ORDER

# Annotations and labels podmig puts on pods.
ANNOTATION_MIGRATION = "podmig.live/migration"          # on the source while a migration runs
ANNOTATION_RESTORE_FROM = "podmig.live/restore-from"    # on the shell: read by podmig's containerd patch
ANNOTATION_SOURCE = "podmig.live/source-pod"            # on the shell: namespace/name of the source
LABEL_SHELL = "podmig.live/shell"                      # on the shell: the migration id
READINESS_GATE = "podmig.live/restored"                # the shell stays out of Services until True
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
TEMPLATE_HASH = "pod-template-hash"

# Owners podmig moves, and why the others are refused.
SUPPORTED_OWNERS = ("", "ReplicaSet")
OWNER_REFUSALS = {
    "StatefulSet": "StatefulSet pods keep their name and storage: moving them needs the sequential "
                   "orphan-and-recreate flow, which podmig does not do yet",
    "DaemonSet": "a DaemonSet runs one pod per node by design: there is nothing to move",
    "Job": "Job pods are counted by their Job controller: podmig does not move them yet",
}
# Resources a CRIU image cannot carry to another node.
PORTABLE_RESOURCES = ("cpu", "memory", "ephemeral-storage")
# Volume sources whose content is re-created by kubelet for the new pod (no state of the process).
KUBELET_VOLUMES = ("configMap", "secret", "projected", "downwardAPI", "serviceAccountToken")
SHARED_ACCESS_MODES = ("ReadWriteMany", "ReadOnlyMany")
# Strategies the pod hand-off implements (pod_handoff.py). precopy (CRIU pre-dump chains) exists
# for runc containers (migrate_container.yml) but not yet through the containerd restore.
POD_STRATEGIES = ("cold", "delta", "postcopy")


def _meta(obj: dict[str, Any] | None) -> dict[str, Any]:
    return (obj or {}).get("metadata") or {}


def node_ready(node: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether a Node object is Ready and schedulable, with the reason when it is not."""
    if not node:
        return False, "no such node"
    conditions = {c.get("type"): c for c in (node.get("status") or {}).get("conditions") or []}
    ready = conditions.get("Ready") or {}
    if ready.get("status") != "True":
        return False, "not Ready (%s: %s)" % (ready.get("reason", "no Ready condition"), ready.get("message", ""))
    if (node.get("spec") or {}).get("unschedulable"):
        return False, "cordoned (spec.unschedulable)"
    return True, "Ready"


def owner_of(pod: dict[str, Any]) -> dict[str, str]:
    """The pod's controlling owner reference as {kind, name, uid}; empty strings for a bare pod."""
    for ref in _meta(pod).get("ownerReferences") or []:
        if ref.get("controller"):
            return {"kind": ref.get("kind", ""), "name": ref.get("name", ""), "uid": ref.get("uid", "")}
    return {"kind": "", "name": "", "uid": ""}


def host_features(pod: dict[str, Any]) -> list[str]:
    """What the pod uses that a checkpoint cannot take to another node, by name."""
    spec = pod.get("spec") or {}
    found = ["%s: true" % key for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            found.append("hostPath volume %s (%s)" % (volume.get("name"), volume["hostPath"].get("path")))
    if spec.get("ephemeralContainers"):
        found.append("ephemeral containers (%s)" % ", ".join(c.get("name", "?") for c in spec["ephemeralContainers"]))
    for container in spec.get("containers") or []:
        if container.get("volumeDevices"):
            found.append("raw block devices in container %s" % container.get("name"))
        if ((container.get("securityContext") or {}).get("privileged")):
            found.append("privileged container %s (host devices)" % container.get("name"))
        resources = container.get("resources") or {}
        for key in sorted(set((resources.get("limits") or {})) | set((resources.get("requests") or {}))):
            if key not in PORTABLE_RESOURCES and not key.startswith("hugepages-"):
                found.append("device resource %s in container %s (GPUs and devices stay on their node)"
                             % (key, container.get("name")))
    return found


def volume_problems(pod: dict[str, Any], claims: dict[str, dict[str, Any]]) -> list[str]:
    """Volumes that cannot follow the pod, each with the reason. emptyDir content is copied."""
    problems = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume.get("name")
        if "emptyDir" in volume or "hostPath" in volume or any(k in volume for k in KUBELET_VOLUMES):
            continue  # copied (emptyDir), refused elsewhere (hostPath) or rebuilt by kubelet
        if "persistentVolumeClaim" in volume:
            claim_name = volume["persistentVolumeClaim"].get("claimName")
            claim = claims.get(claim_name)
            if not claim:
                problems.append("volume %s: claim %s not found" % (name, claim_name))
                continue
            modes = (claim.get("status") or {}).get("accessModes") or (claim.get("spec") or {}).get("accessModes") or []
            if not any(mode in SHARED_ACCESS_MODES for mode in modes):
                problems.append("volume %s: claim %s is %s; only ReadWriteMany/ReadOnlyMany claims can be "
                                "mounted on both nodes during the hand-over" % (name, claim_name, "/".join(modes) or "?"))
            continue
        if "ephemeral" in volume:
            problems.append("volume %s: generic ephemeral volumes are bound to the pod and cannot move" % name)
            continue
        kinds = [k for k in volume if k != "name"]
        problems.append("volume %s: %s volumes are not supported" % (name, "/".join(kinds) or "unknown"))
    return problems


def missing_images(pod: dict[str, Any], node: dict[str, Any] | None) -> list[str]:
    """Container images of the pod that the target node does not report having."""
    have = set()
    for image in ((node or {}).get("status") or {}).get("images") or []:
        for name in image.get("names") or []:
            have.add(name)
            have.add(name.split("@", 1)[0])
    wanted = [c.get("image") for c in (pod.get("spec") or {}).get("containers") or []]
    return [image for image in wanted if image and image not in have and "docker.io/library/" + image not in have]


def plan_pod_migration(request: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """Check a pod migration request.

    request: namespace, pod, target_node, strategy (auto|...), auto_order (optional)
    facts:   pod (object or None), nodes ({name: Node object}), claims ({name: PVC object}),
             owner_objects ({"ReplicaSet": obj, "Deployment": obj} as found), criu ({node: criu_info facts})
    Returns {"ok", "checks", "refusals", "strategy", "reason", "risk", "source_node", "owner", "containers"}.
    """
    checks: list[dict[str, Any]] = []
    pod = facts.get("pod")
    nodes = facts.get("nodes") or {}
    ident = "%s/%s" % (request["namespace"], request["pod"])
    result: dict[str, Any] = {"checks": checks, "strategy": None, "reason": None, "risk": None,
                              "source_node": None, "owner": None, "containers": []}

    _check(checks, "pod exists", bool(pod), "pod %s %s" % (ident, "found" if pod else "does not exist"))
    target_name = request["target_node"]
    target = nodes.get(target_name)
    ready, why = node_ready(target)
    _check(checks, "target node ready", ready, "node %s: %s" % (target_name, why))
    if pod:
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        source_name = spec.get("nodeName")
        result["source_node"] = source_name
        _check(checks, "different nodes", source_name != target_name,
               "%s already runs on %s: choose another target node" % (ident, target_name)
               if source_name == target_name else "%s -> %s" % (source_name, target_name))
        src_ready, src_why = node_ready(nodes.get(source_name))
        # A cordoned source is the normal case of a drain: only readiness matters there.
        src_ok = src_ready or src_why.startswith("cordoned")
        _check(checks, "source node ready", src_ok, "node %s: %s" % (source_name, "Ready" if src_ok else src_why))
        statuses = status.get("containerStatuses") or []
        running = [s.get("name") for s in statuses if "running" in (s.get("state") or {})]
        containers = [c.get("name") for c in spec.get("containers") or []]
        result["containers"] = containers
        all_running = status.get("phase") == "Running" and sorted(running) == sorted(containers)
        _check(checks, "pod running", all_running,
               "phase %s, running containers %s of %s" % (status.get("phase"), ", ".join(running) or "none",
                                                          ", ".join(containers)))
        migrating = (_meta(pod).get("annotations") or {}).get(ANNOTATION_MIGRATION)
        _check(checks, "not being migrated", not migrating,
               "migration %s already holds this pod (annotation %s)" % (migrating, ANNOTATION_MIGRATION)
               if migrating else "no other migration holds it")
        _check(checks, "not terminating", not _meta(pod).get("deletionTimestamp"),
               "the pod is being deleted" if _meta(pod).get("deletionTimestamp") else "not being deleted")
        features = host_features(pod)
        _check(checks, "portable pod", not features,
               "uses what CRIU cannot move to another node: " + "; ".join(features) if features
               else "no host namespaces, host paths or devices")
        problems = volume_problems(pod, facts.get("claims") or {})
        _check(checks, "volumes can follow", not problems, "; ".join(problems) if problems
               else "emptyDir copied, configMap/secret/projected rebuilt, shared claims handed over")
        owner = owner_of(pod)
        if owner["kind"] == "ReplicaSet":
            rs = (facts.get("owner_objects") or {}).get("ReplicaSet") or {}
            deployment = owner_of(rs) if rs else {"kind": "", "name": "", "uid": ""}
            owner["deployment"] = deployment["name"] if deployment["kind"] == "Deployment" else ""
        result["owner"] = owner
        owner_ok = owner["kind"] in SUPPORTED_OWNERS
        _check(checks, "owner supported", owner_ok,
               "%s %s: %s" % (owner["kind"], owner["name"], OWNER_REFUSALS.get(
                   owner["kind"], "pods owned by a %s are not supported" % owner["kind"]))
               if not owner_ok else ("bare pod" if not owner["kind"] else "ReplicaSet %s%s" % (
                   owner["name"], " of Deployment %s" % owner["deployment"] if owner.get("deployment") else "")))
        if target:
            missing = missing_images(pod, target)
            _check(checks, "images present on target", not missing,
                   "node %s lacks %s (podmig does not pull images during a migration)" % (
                       target_name, ", ".join(missing)) if missing else "every container image is there")
        criu = facts.get("criu") or {}
        src_criu, dst_criu = criu.get(source_name) or {}, criu.get(target_name) or {}
        for side, name, node_facts in (("source", source_name, src_criu), ("target", target_name, dst_criu)):
            check = node_facts.get("check") or {}
            ok = bool(node_facts.get("installed")) and bool(check.get("ok"))
            _check(checks, "CRIU usable on %s" % side, ok,
                   "%s: %s" % (name, check.get("message") or ("criu %s" % node_facts.get("version")
                                                             if ok else "criu_info gave no facts")))
        same_arch = src_criu.get("arch") == dst_criu.get("arch") and src_criu.get("page_size") == dst_criu.get("page_size")
        _check(checks, "same architecture", same_arch, "source %s/%s, target %s/%s" % (
            src_criu.get("arch"), src_criu.get("page_size"), dst_criu.get("arch"), dst_criu.get("page_size")))
        requested = request.get("strategy", "auto")
        order = tuple(s for s in (request.get("auto_order") or DEFAULT_AUTO_ORDER) if s in POD_STRATEGIES)
        if requested in POD_STRATEGIES + ("auto",):
            check_strategy(checks, result, requested, src_criu, dst_criu, order)
        else:
            _check(checks, "strategy", False,
                   "%s is not available for pods yet: podmig moves pods with %s (its copy rounds exist for runc "
                   "containers, playbooks/migrate_container.yml)" % (requested, " or ".join(POD_STRATEGIES)))
    return finish(checks, result)


def migration_id(namespace: str, pod: str, uid: str, started: str) -> str:
    """A short id for one migration of one pod: stable for the same inputs, DNS-label safe."""
    return hashlib.sha256(("%s/%s/%s/%s" % (namespace, pod, uid, started)).encode()).hexdigest()[:8]


def shell_pod_name(pod_name: str, mig_id: str) -> str:
    """`<pod>-mig-<id>`, shortened to fit the 63-character name limit podmig keeps to."""
    suffix = "-mig-" + mig_id
    return pod_name[: 63 - len(suffix)].rstrip("-.") + suffix


def shell_pod_manifest(pod: dict[str, Any], target_node: str, mig_id: str, staging_dir: str,
                       owner: dict[str, str] | None = None) -> dict[str, Any]:
    """The pod that receives the restored containers on the target node.

    Same containers, resources, volume mounts and labels as the source (Services still select it),
    but: a new name, `nodeName` = target (kubelet admits it directly), the restore annotation for
    podmig's containerd patch, a readiness gate that keeps it out of Services until podmig sets it,
    no init containers or postStart hooks (they already ran in the source), no service-account
    token mounts copied (kubelet makes new ones), and for ReplicaSet pods no pod-template-hash label
    and no owner (the ReplicaSet adopts it only when podmig adds the label back, after the restore).
    """
    meta = _meta(pod)
    spec = dict(pod.get("spec") or {})
    labels = dict(meta.get("labels") or {})
    labels.pop(TEMPLATE_HASH, None)
    labels[LABEL_SHELL] = mig_id
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if not k.startswith("kubectl.kubernetes.io/") and k != ANNOTATION_MIGRATION}
    annotations[ANNOTATION_RESTORE_FROM] = staging_dir
    annotations[ANNOTATION_SOURCE] = "%s/%s" % (meta.get("namespace"), meta.get("name"))
    if owner and owner.get("kind") == "ReplicaSet":
        annotations[DELETION_COST] = str(2 ** 31 - 1)

    token_volumes = {v.get("name") for v in spec.get("volumes") or []
                     if v.get("name", "").startswith("kube-api-access-")}
    containers = []
    for container in spec.get("containers") or []:
        container = dict(container)
        container["volumeMounts"] = [m for m in container.get("volumeMounts") or [] if m.get("name") not in token_volumes]
        if not container["volumeMounts"]:
            container.pop("volumeMounts")
        lifecycle = dict(container.get("lifecycle") or {})
        lifecycle.pop("postStart", None)
        if lifecycle:
            container["lifecycle"] = lifecycle
        else:
            container.pop("lifecycle", None)
        # The image is on the node already (checked by the plan): no pull during a hand-over.
        container["imagePullPolicy"] = "IfNotPresent"
        containers.append(container)

    new_spec: dict[str, Any] = {}
    for key in ("restartPolicy", "terminationGracePeriodSeconds", "dnsPolicy", "dnsConfig", "securityContext",
                "serviceAccountName", "automountServiceAccountToken", "priorityClassName", "priority",
                "enableServiceLinks", "subdomain", "tolerations", "shareProcessNamespace", "runtimeClassName",
                "imagePullSecrets", "os", "schedulerName"):
        if key in spec:
            new_spec[key] = spec[key]
    new_spec["containers"] = containers
    new_spec["volumes"] = [v for v in spec.get("volumes") or [] if v.get("name") not in token_volumes]
    if not new_spec["volumes"]:
        new_spec.pop("volumes")
    new_spec["nodeName"] = target_node
    # The process keeps the name it read at start: give the new pod the same hostname.
    new_spec["hostname"] = spec.get("hostname") or meta.get("name")
    gates = [g for g in spec.get("readinessGates") or [] if g.get("conditionType") != READINESS_GATE]
    new_spec["readinessGates"] = gates + [{"conditionType": READINESS_GATE}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": shell_pod_name(meta.get("name", "pod"), mig_id), "namespace": meta.get("namespace"),
                     "labels": labels, "annotations": annotations},
        "spec": new_spec,
    }
