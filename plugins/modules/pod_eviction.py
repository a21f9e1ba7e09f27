#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pod_eviction
short_description: Evict pods through the Eviction API, waiting while a PodDisruptionBudget forbids it
version_added: 0.3.0
description:
  - Evicts each given pod through the C(pods/eviction) subresource, so PodDisruptionBudgets hold.
  - When the API answers 429 (a disruption budget forbids it now) the eviction is retried until
    O(wait_timeout); a pod still refused then is reported C(blocked) with the budget's name and
    message, and the module does not fail (the drain reports it and can be run again).
  - With O(wait) the module waits (within the same O(wait_timeout)) until evicted pods are gone.
  - M(kubernetes.core.k8s_drain) fails on the first 429 and works on whole nodes; this module works
    on the pods podmig's drain plan chose to evict.
author:
  - podmig developers
requirements:
  - kubernetes (Python client)
extends_documentation_fragment:
  - podmig.live.kubernetes
options:
  pods:
    description: The pods to evict.
    type: list
    elements: dict
    required: true
    suboptions:
      namespace:
        description: Namespace of the pod.
        type: str
        required: true
      name:
        description: Name of the pod.
        type: str
        required: true
  grace_period:
    description: Termination grace period for the evicted pods (their own when omitted).
    type: int
  wait:
    description: Wait until the evicted pods are gone.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to retry evictions a disruption budget refuses, and to wait for the pods to go.
    type: int
    default: 300
  retry_delay:
    description: Seconds between two attempts while a disruption budget refuses.
    type: int
    default: 5
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Evict what the drain plan does not migrate
  podmig.live.pod_eviction:
    kubeconfig: inventories/lab/kubeconfig
    pods:
      - namespace: default
        name: web-7c9d8-abcde
    wait_timeout: 120
  register: evicted
"""

RETURN = r"""
pods:
  description: One entry per pod, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: Namespace of the pod.
      type: str
    name:
      description: Name of the pod.
      type: str
    outcome:
      description: >-
        C(evicted) (gone, or accepted for eviction when O(wait) is false), C(gone) (already absent),
        C(blocked) (a disruption budget still refused at the deadline), C(terminating) (accepted but
        not gone at the deadline), C(failed) (another API error), C(would_evict) (check mode).
      type: str
    pdb:
      description: Name of the disruption budget that refused the eviction, when the API named it.
      type: str
    message:
      description: The API's message for a refused or failed eviction.
      type: str
    seconds:
      description: Seconds from the first attempt to the outcome.
      type: float
blocked:
  description: Number of pods a disruption budget kept.
  returned: always
  type: int
"""

import json
import re
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.args_common import KUBE_ARGS
from ansible_collections.podmig.live.plugins.module_utils.kube import ApiException, client, core_api


PDB_NAME = re.compile(r"disruption budget (\S+)")


def argspec() -> dict:
    return {
        "pods": {"type": "list", "elements": "dict", "required": True,
                 "options": {"namespace": {"type": "str", "required": True},
                             "name": {"type": "str", "required": True}}},
        "grace_period": {"type": "int"},
        "wait": {"type": "bool", "default": True},
        "wait_timeout": {"type": "int", "default": 300},
        "retry_delay": {"type": "int", "default": 5},
        **KUBE_ARGS,
    }


def refusal(body: str | None) -> tuple[str, str]:
    """(budget name, message) from a 429 answer of the Eviction API."""
    try:
        status = json.loads(body or "{}")
    except ValueError:
        return "", body or ""
    causes = (status.get("details") or {}).get("causes") or []
    messages = [c.get("message", "") for c in causes if c.get("reason") == "DisruptionBudget"] or [
        status.get("message", "")]
    match = next((PDB_NAME.search(m) for m in messages if PDB_NAME.search(m)), None)
    return (match.group(1) if match else ""), "; ".join(m for m in messages if m)


class Evictor:
    def __init__(self, module: AnsibleModule, api) -> None:
        self.module = module
        self.api = api
        self.params = module.params

    def exists(self, namespace: str, name: str, uid: str | None = None) -> bool:
        try:
            pod = self.api.read_namespaced_pod(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return uid is None or pod.metadata.uid == uid

    def body(self, namespace: str, name: str):
        options = None
        if self.params["grace_period"] is not None:
            options = client.V1DeleteOptions(grace_period_seconds=self.params["grace_period"])
        return client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace), delete_options=options)

    def run(self) -> list[dict]:
        start = time.monotonic()
        deadline = start + self.params["wait_timeout"]
        results, pending = [], []
        for ref in self.params["pods"]:
            entry = {"namespace": ref["namespace"], "name": ref["name"]}
            try:
                pod = self.api.read_namespaced_pod(ref["name"], ref["namespace"])
            except ApiException as exc:
                if exc.status != 404:
                    raise
                results.append(dict(entry, outcome="gone", seconds=0.0))
                continue
            entry["uid"] = pod.metadata.uid
            if self.module.check_mode:
                results.append(dict(entry, outcome="would_evict"))
                continue
            results.append(entry)
            pending.append(entry)
        # Evict, retrying the ones a disruption budget refuses until the deadline.
        while pending:
            refused = []
            for entry in pending:
                try:
                    self.api.create_namespaced_pod_eviction(entry["name"], entry["namespace"],
                                                            self.body(entry["namespace"], entry["name"]))
                    entry.update(outcome="evicted" if not self.params["wait"] else "terminating")
                    entry.pop("pdb", None)
                    entry.pop("message", None)
                except ApiException as exc:
                    if exc.status == 404:
                        entry["outcome"] = "gone"
                    elif exc.status == 429:
                        entry["pdb"], entry["message"] = refusal(exc.body)
                        entry["outcome"] = "blocked"
                        refused.append(entry)
                    else:
                        entry.update(outcome="failed", message="%s %s: %s" % (exc.status, exc.reason,
                                                                             refusal(exc.body)[1]))
                entry["seconds"] = round(time.monotonic() - start, 1)
            pending = refused
            if pending:
                if time.monotonic() + self.params["retry_delay"] > deadline:
                    break
                time.sleep(self.params["retry_delay"])
        # Wait for the evicted pods to be gone (the same uid: a StatefulSet may recreate the name).
        waiting = [e for e in results if e.get("outcome") == "terminating"]
        while waiting:
            waiting = [e for e in waiting if self.exists(e["namespace"], e["name"], e["uid"])]
            for entry in results:
                if entry.get("outcome") == "terminating" and entry not in waiting:
                    entry.update(outcome="evicted", seconds=round(time.monotonic() - start, 1))
            if waiting and time.monotonic() + 1 > deadline:
                break
            if waiting:
                time.sleep(1)
        for entry in results:
            entry.pop("uid", None)
        return results


def main() -> None:
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    api = core_api(module)
    try:
        results = Evictor(module, api).run()
    except ApiException as exc:
        module.fail_json(msg="eviction: %s %s" % (exc.status, exc.reason), body=exc.body)
    except OSError as exc:
        module.fail_json(msg="cannot reach the cluster: %s" % exc)
    changed = any(r["outcome"] in ("evicted", "terminating", "would_evict") for r in results)
    module.exit_json(changed=changed, pods=results, blocked=sum(r["outcome"] == "blocked" for r in results))


if __name__ == "__main__":
    main()
