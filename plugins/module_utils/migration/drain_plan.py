# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Plan the drain of one node: which pods migrate, where each goes, and what is evicted or left.

Works on API objects as kubernetes.core.k8s_info returns them (plain dicts). Nothing here talks to
the cluster: playbooks/drain.yml reads the objects, asks for a plan, refuses the whole drain when
the plan is not ok (before anything is cordoned or moved), and carries it out.

Each pod on the node gets one action and a reason:
  migrate  opted in (annotation ``podmig.live/migrate: "true"`` or the drain's label selector) and
           movable: it goes to ``target`` with playbooks/migrate.yml
  evict    everything else that a controller recreates: the Eviction API (PodDisruptionBudgets hold)
  leave    DaemonSet pods, static (mirror) pods and finished pods: a drain does not move them
  refused  opted in but not movable by podmig, or a bare pod eviction would lose: the plan is not ok
           unless the drain was told to evict them anyway
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from ansible_collections.podmig.live.plugins.module_utils.migration.pod_plan import (
    ANNOTATION_MIGRATION, OWNER_REFUSALS, SUPPORTED_OWNERS, host_features, missing_images, node_ready, owner_of,
    volume_problems)

try:
    from kubernetes.utils.quantity import parse_quantity
except ImportError:  # pragma: no cover - the controller has the kubernetes client (requirements.txt)
    parse_quantity = None

ANNOTATION_OPT_IN = "podmig.live/migrate"
ANNOTATION_MIRROR = "kubernetes.io/config.mirror"
SCHEDULING_EFFECTS = ("NoSchedule", "NoExecute")
RESOURCES = ("cpu", "memory", "pods")


# ---------------------------------------------------------------------------------------- quantities
def quantity(value: Any) -> Decimal:
    """A Kubernetes quantity ("250m", "64Mi", "1G", 2) as a Decimal."""
    if value is None or value == "":
        return Decimal(0)
    if parse_quantity is None:  # pragma: no cover
        raise ValueError("the kubernetes Python client is needed to parse quantities")
    return Decimal(parse_quantity(value))


def show_quantity(resource: str, value: Decimal) -> str:
    """A readable quantity: cpu in cores or millicores, memory in Mi/Gi."""
    if resource == "cpu":
        return "%dm" % int(value * 1000) if value < 1 else ("%s" % value.normalize())
    if resource == "memory":
        mib = value / (1 << 20)
        return "%.1fGi" % (mib / 1024) if mib >= 1024 else "%dMi" % int(mib)
    return "%d" % int(value)


def pod_requests(pod: dict[str, Any]) -> dict[str, Decimal]:
    """What the scheduler accounts for the pod: containers' requests summed, at least each init container's."""
    spec = pod.get("spec") or {}
    total = {r: Decimal(0) for r in RESOURCES}
    for container in spec.get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        for resource in ("cpu", "memory"):
            total[resource] += quantity(requests.get(resource))
    for container in spec.get("initContainers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        for resource in ("cpu", "memory"):
            total[resource] = max(total[resource], quantity(requests.get(resource)))
    for resource, value in ((spec.get("overhead") or {}).items()):
        if resource in ("cpu", "memory"):
            total[resource] += quantity(value)
    total["pods"] = Decimal(1)
    return total


def terminated(pod: dict[str, Any]) -> bool:
    return ((pod.get("status") or {}).get("phase")) in ("Succeeded", "Failed")


def free_resources(node: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Decimal]:
    """The node's allocatable minus the requests of the non-terminated pods bound to it."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    free = {r: quantity(allocatable.get(r)) for r in RESOURCES}
    name = (node.get("metadata") or {}).get("name")
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") == name and not terminated(pod):
            for resource, value in pod_requests(pod).items():
                free[resource] -= value
    return free


# ---------------------------------------------------------------------------------------- selectors
_SET_EXPR = re.compile(r"^\s*(!?)\s*([A-Za-z0-9._/-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_EXPR = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")


def parse_selector(selector: str) -> list[tuple[str, str, list[str]]]:
    """A label selector string ("app=db,tier in (a,b),!legacy") as (key, operator, values) terms."""
    terms = []
    # split on commas outside parentheses
    parts, depth, current = [], 0, ""
    for char in selector or "":
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    for part in (p for p in parts if p.strip()):
        match = _EQ_EXPR.match(part)
        if match:
            key, op, value = match.groups()
            terms.append((key, "NotIn" if op == "!=" else "In", [value]))
            continue
        match = _SET_EXPR.match(part)
        if not match or (match.group(1) and match.group(3)):
            raise ValueError("cannot parse label selector term %r" % part.strip())
        negate, key, op, values = match.groups()
        if op:
            terms.append((key, "In" if op == "in" else "NotIn", [v.strip() for v in values.split(",") if v.strip()]))
        else:
            terms.append((key, "DoesNotExist" if negate else "Exists", []))
    return terms


def expression_matches(labels: dict[str, str], key: str, operator: str, values: list[str]) -> bool:
    """One matchExpressions term (In, NotIn, Exists, DoesNotExist, Gt, Lt) against a label set."""
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, ValueError, IndexError):
            return False
        return have > want if operator == "Gt" else have < want
    raise ValueError("unknown selector operator %r" % operator)


def selector_matches(labels: dict[str, str], selector: str) -> bool:
    return all(expression_matches(labels, *term) for term in parse_selector(selector))


# ---------------------------------------------------------------------------------------- placement
def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return ((obj.get("metadata") or {}).get("labels")) or {}


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for toleration in tolerations or []:
        if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
            continue
        operator = toleration.get("operator") or "Equal"
        if not toleration.get("key"):
            if operator == "Exists":
                return True
            continue
        if toleration.get("key") != taint.get("key"):
            continue
        if operator == "Exists" or toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def _term_matches(node: dict[str, Any], term: dict[str, Any]) -> bool:
    labels = _labels(node)
    fields = {"metadata.name": (node.get("metadata") or {}).get("name", "")}
    expressions = term.get("matchExpressions") or []
    field_terms = term.get("matchFields") or []
    if not expressions and not field_terms:
        return False  # an empty term matches no node (the scheduler's rule)
    return (all(expression_matches(labels, e.get("key"), e.get("operator"), e.get("values") or []) for e in expressions)
            and all(expression_matches(fields, f.get("key"), f.get("operator"), f.get("values") or [])
                    for f in field_terms))


def unfit_reasons(pod: dict[str, Any], node: dict[str, Any], free: dict[str, Decimal], drained: str) -> list[str]:
    """Why the pod cannot run on the node (empty when it can), in the scheduler's terms."""
    name = (node.get("metadata") or {}).get("name")
    if name == drained:
        return ["the node being drained"]
    ready, why = node_ready(node)
    if not ready:
        return [why]
    reasons = []
    spec = pod.get("spec") or {}
    labels = _labels(node)
    wrong = ["%s=%s" % (k, v) for k, v in sorted((spec.get("nodeSelector") or {}).items()) if labels.get(k) != v]
    if wrong:
        reasons.append("nodeSelector %s does not match" % ", ".join(wrong))
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    if terms is not None and not any(_term_matches(node, t) for t in terms):
        reasons.append("required node affinity does not match")
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in SCHEDULING_EFFECTS and not tolerates(spec.get("tolerations") or [], taint):
            reasons.append("taint %s%s:%s not tolerated" % (
                taint.get("key"), "=" + taint["value"] if taint.get("value") else "", taint.get("effect")))
    need = pod_requests(pod)
    for resource in RESOURCES:
        if need[resource] > free[resource]:
            reasons.append("needs %s %s, %s free" % (resource, show_quantity(resource, need[resource]),
                                                     show_quantity(resource, max(free[resource], Decimal(0)))))
    missing = missing_images(pod, node)
    if missing:
        reasons.append("lacks image %s (no pull during a migration)" % ", ".join(missing))
    return reasons


# ---------------------------------------------------------------------------------------- classification
def _ident(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return "%s/%s" % (meta.get("namespace"), meta.get("name"))


def opted_in(pod: dict[str, Any], selector: str = "") -> bool:
    """Annotation podmig.live/migrate: "true" (set on the pod or its template), or the drain's selector."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if str(annotations.get(ANNOTATION_OPT_IN, "")).lower() == "true":
        return True
    return bool(selector) and selector_matches(_labels(pod), selector)


def migration_problems(pod: dict[str, Any], claims: dict[str, dict[str, Any]]) -> list[str]:
    """Why playbooks/migrate.yml would refuse the pod, as far as the pod alone tells (pod_plan's checks)."""
    problems = []
    meta = pod.get("metadata") or {}
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    running = [s.get("name") for s in status.get("containerStatuses") or [] if "running" in (s.get("state") or {})]
    containers = [c.get("name") for c in spec.get("containers") or []]
    if status.get("phase") != "Running" or sorted(running) != sorted(containers):
        problems.append("not running (phase %s, running containers %s of %s)" % (
            status.get("phase"), ", ".join(running) or "none", ", ".join(containers)))
    if meta.get("deletionTimestamp"):
        problems.append("being deleted")
    if (meta.get("annotations") or {}).get(ANNOTATION_MIGRATION):
        problems.append("migration %s holds it (annotation %s): rerun when it has ended"
                        % (meta["annotations"][ANNOTATION_MIGRATION], ANNOTATION_MIGRATION))
    problems += host_features(pod)
    problems += volume_problems(pod, claims)
    owner = owner_of(pod)
    if owner["kind"] not in SUPPORTED_OWNERS:
        problems.append("%s %s: %s" % (owner["kind"], owner["name"], OWNER_REFUSALS.get(
            owner["kind"], "pods owned by a %s are not supported" % owner["kind"])))
    return problems


def classify(pod: dict[str, Any], claims: dict[str, dict[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    """One pod's action (migrate, evict, leave, refused) and the reason."""
    meta = pod.get("metadata") or {}
    owner = owner_of(pod)
    entry: dict[str, Any] = {"namespace": meta.get("namespace"), "name": meta.get("name"),
                             "owner": ("%s/%s" % (owner["kind"], owner["name"])) if owner["kind"] else "",
                             "target": None}
    namespaces = options.get("namespaces") or []
    if namespaces and meta.get("namespace") not in namespaces:
        return dict(entry, action="leave", reason="namespace %s is not in drain_namespaces: not touched"
                    % meta.get("namespace"))
    if terminated(pod):
        return dict(entry, action="leave", reason="finished (%s): nothing runs" % pod["status"]["phase"])
    if (meta.get("annotations") or {}).get(ANNOTATION_MIRROR):
        return dict(entry, action="leave", reason="static pod of the node's kubelet (mirror pod): not evictable")
    if owner["kind"] == "DaemonSet":
        return dict(entry, action="leave", reason="DaemonSet %s: runs on every node, stays" % owner["name"])
    if opted_in(pod, options.get("selector") or ""):
        problems = migration_problems(pod, claims)
        if not problems:
            return dict(entry, action="migrate", reason="opted in")
        reason = "opted in but cannot be migrated: " + "; ".join(problems)
        if options.get("evict_refused") and owner["kind"]:
            return dict(entry, action="evict", reason=reason + " (evicted: drain_evict_refused)")
        if options.get("evict_refused") and options.get("force"):
            return dict(entry, action="evict", reason=reason + " (deleted for good: drain_evict_refused and drain_force)")
        return dict(entry, action="refused", reason=reason)
    if not owner["kind"]:
        if options.get("force"):
            return dict(entry, action="evict", reason="bare pod: evicted for good, nothing recreates it (drain_force)")
        return dict(entry, action="refused",
                    reason="bare pod: nothing would recreate it after an eviction; opt it in "
                           "(annotation %s: \"true\") to migrate it, or set drain_force=true to lose it" % ANNOTATION_OPT_IN)
    return dict(entry, action="evict", reason="not opted in: %s recreates it elsewhere" % entry["owner"])


def plan_drain(request: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """Plan the drain of one node.

    request: node, selector (label selector, optional), evict_refused (bool), force (bool),
             namespaces (only pods of these namespaces are moved; all when empty)
    facts:   nodes (list of Node objects), pods (list of every Pod), claims ({"ns/name": PVC})
    Returns {"ok", "node", "pods" (every pod on the node with action, reason, target, requests),
             "migrate", "evict", "leave", "refused" (lists of those entries), "refusals" (lines)}.
    """
    drained = request["node"]
    nodes = list(facts.get("nodes") or [])
    pods = list(facts.get("pods") or [])
    claims_by_ns: dict[str, dict[str, Any]] = {}
    for key, claim in (facts.get("claims") or {}).items():
        namespace, _, name = key.partition("/")
        claims_by_ns.setdefault(namespace, {})[name] = claim
    names = [(n.get("metadata") or {}).get("name") for n in nodes]
    refusals: list[str] = []
    if drained not in names:
        refusals.append("node %s does not exist" % drained)

    on_node = sorted((p for p in pods if (p.get("spec") or {}).get("nodeName") == drained), key=_ident)
    entries = []
    for pod in on_node:
        entry = classify(pod, claims_by_ns.get((pod.get("metadata") or {}).get("namespace"), {}), request)
        entry["requests"] = {r: show_quantity(r, v) for r, v in pod_requests(pod).items() if r != "pods"}
        entry["_pod"] = pod
        entries.append(entry)

    # Largest first (memory, then cpu), each to the fitting node with the most memory left (spreads them).
    free = {(n.get("metadata") or {}).get("name"): free_resources(n, pods) for n in nodes}
    movers = sorted((e for e in entries if e["action"] == "migrate"),
                    key=lambda e: (-pod_requests(e["_pod"])["memory"], -pod_requests(e["_pod"])["cpu"],
                                   e["namespace"], e["name"]))
    for entry in movers:
        pod = entry["_pod"]
        candidates, why_not = [], []
        for node in nodes:
            name = (node.get("metadata") or {}).get("name")
            reasons = unfit_reasons(pod, node, free[name], drained)
            if reasons:
                why_not.append("%s: %s" % (name, ", ".join(reasons)))
            else:
                candidates.append((-free[name]["memory"], -free[name]["cpu"], name))
        if not candidates:
            entry["action"] = "refused"
            entry["reason"] = "no node can take it: " + "; ".join(why_not)
            continue
        target = sorted(candidates)[0][2]
        entry["target"] = target
        entry["reason"] = "opted in; fits on %s" % target
        for resource, value in pod_requests(pod).items():
            free[target][resource] -= value

    for entry in entries:
        entry.pop("_pod")
        if entry["action"] == "refused":
            refusals.append("%s/%s: %s" % (entry["namespace"], entry["name"], entry["reason"]))
    by_action = {a: [e for e in entries if e["action"] == a] for a in ("migrate", "evict", "leave", "refused")}
    # Migrations in the order they were placed (largest first).
    by_action["migrate"] = [e for e in movers if e["action"] == "migrate"]
    return dict(by_action, ok=not refusals, node=drained, pods=entries, refusals=refusals)


# ---------------------------------------------------------------------------------------- report
def _num(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def drain_report(plan: dict[str, Any], migrations: list[dict[str, Any]], evictions: list[dict[str, Any]],
                 run: dict[str, Any]) -> dict[str, Any]:
    """The report of one node's drain: every pod with its outcome, and totals.

    plan:       plan_drain's result
    migrations: per migrated pod {namespace, name, target, rc, report (migrate.yml's JSON report or {}),
                error}; a pod without an entry was not attempted (check mode, or an earlier failure)
    evictions:  podmig.live.pod_eviction's ``pods`` (namespace, name, outcome, reason, pdb, seconds)
    run:        node, started_at, finished_at, check_mode, cordoned, report_dir
    """
    done = {"%s/%s" % (m.get("namespace"), m.get("name")): m for m in migrations or []}
    evicted = {"%s/%s" % (e.get("namespace"), e.get("name")): e for e in evictions or []}
    check_mode = bool(run.get("check_mode"))
    pods = []
    for entry in plan.get("pods") or []:
        key = "%s/%s" % (entry["namespace"], entry["name"])
        row = {k: entry.get(k) for k in ("namespace", "name", "owner", "action", "reason", "target", "requests")}
        if entry["action"] == "migrate":
            result = done.get(key)
            report = (result or {}).get("report") or {}
            if result is None:
                row["outcome"] = "planned" if check_mode else "not_attempted"
            else:
                row["outcome"] = report.get("outcome") or ("migrated" if result.get("rc") == 0 else "failed")
                if row["outcome"] != "migrated" and (report.get("error") or result.get("error")):
                    row["error"] = report.get("error") or result.get("error")
            for key_in, key_out in (("strategy", "strategy"), ("pause_s", "downtime_s"), ("total_s", "total_s"),
                                    ("bytes_sent", "bytes_sent"), ("shell_pod", "new_name"),
                                    ("migration_id", "migration_id")):
                if report.get(key_in) is not None:
                    row[key_out] = report[key_in]
            if result and result.get("report_file"):
                row["report_file"] = result["report_file"]
        elif entry["action"] == "evict":
            result = evicted.get(key)
            row["outcome"] = (result or {}).get("outcome") or ("planned" if check_mode else "not_attempted")
            if row["outcome"] == "would_evict":
                row["outcome"] = "planned"
            for field in ("pdb", "seconds", "message"):
                if (result or {}).get(field):
                    row[field] = result[field]
        else:
            row["outcome"] = "left" if entry["action"] == "leave" else "refused"
        pods.append(row)
    outcomes = [p["outcome"] for p in pods]
    downtimes = [p["downtime_s"] for p in pods if p.get("downtime_s") is not None]
    totals = {outcome: outcomes.count(outcome) for outcome in sorted(set(outcomes))}
    totals["pods"] = len(pods)
    totals["bytes_sent"] = sum(int(p.get("bytes_sent") or 0) for p in pods)
    totals["max_downtime_s"] = max(downtimes) if downtimes else None
    started, finished = _num(run.get("started_at")), _num(run.get("finished_at"))
    unfinished = [o for o in outcomes if o not in ("migrated", "evicted", "gone", "left", "planned")]
    return {
        "kind": "drain", "node": plan.get("node"), "check_mode": check_mode,
        "ok": bool(plan.get("ok")) and not unfinished,
        "empty": not check_mode and bool(plan.get("ok")) and not unfinished,
        "cordoned": bool(run.get("cordoned")),
        "refusals": plan.get("refusals") or [],
        "started_at": started, "finished_at": finished,
        "duration_s": round(finished - started, 3) if started and finished else None,
        "pods": pods, "totals": totals,
    }


def drain_summary(report: dict[str, Any]) -> list[str]:
    """Readable lines: one per pod, then the totals."""
    lines = ["drain of %s%s: %s in %ss" % (
        report.get("node"), " (check mode: nothing moved)" if report.get("check_mode") else "",
        "done, node empty of movable pods" if report.get("empty") else ("planned" if report.get("check_mode") and
                                                                         report.get("ok") else "NOT done"),
        report.get("duration_s"))]
    for pod in report.get("pods") or []:
        detail = pod.get("reason") or ""
        if pod["action"] == "migrate" and pod["outcome"] in ("planned", "not_attempted"):
            detail = "migrate -> %s" % pod.get("target")
        elif pod["action"] == "migrate":
            detail = "-> %s, %s, downtime %s s, %s bytes" % (pod.get("target"), pod.get("strategy") or "-",
                                                             pod.get("downtime_s", "-"), pod.get("bytes_sent", 0))
            if pod.get("error"):
                detail += ": " + pod["error"]
        elif pod["action"] == "evict" and pod["outcome"] == "planned":
            detail = "evict: " + detail
        elif pod.get("outcome") == "blocked":
            detail = "blocked by PodDisruptionBudget %s: %s" % (pod.get("pdb") or "?", pod.get("message") or "")
        lines.append("  %-13s %s/%s  %s" % (pod["outcome"], pod["namespace"], pod["name"], detail))
    if not report.get("pods"):
        lines.append("  nothing left on the node to migrate or evict")
    totals = report.get("totals") or {}
    lines.append("totals: " + ", ".join("%s %s" % (k, v) for k, v in sorted(totals.items())))
    return lines
