#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pod_condition
short_description: Set a condition in a pod's status (a readiness gate)
version_added: 0.2.0
description:
  - Sets one condition in C(status.conditions) of a pod through the C(status) subresource, which
    M(kubernetes.core.k8s) does not patch. podmig uses it for the readiness gate
    C(podmig.live/restored) of a shell pod, which keeps the pod out of Services until its
    containers were restored and checked.
  - Idempotent - a condition already at the wanted status is left alone.
author:
  - podmig developers
requirements:
  - kubernetes (Python client)
extends_documentation_fragment:
  - podmig.live.kubernetes
options:
  namespace:
    description: Namespace of the pod.
    type: str
    default: default
  name:
    description: Name of the pod.
    type: str
    required: true
  condition:
    description: The condition type (the readiness gate's C(conditionType)).
    type: str
    default: podmig.live/restored
  status:
    description: The condition's status.
    type: bool
    default: true
  reason:
    description: A CamelCase reason recorded with the condition.
    type: str
    default: PodmigRestored
  message:
    description: A human message recorded with the condition.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Let the restored pod serve
  podmig.live.pod_condition:
    name: app-mig-0123abcd
    namespace: default
    kubeconfig: inventories/lab/kubeconfig
"""

RETURN = r"""
conditions:
  description: The pod's conditions after the change.
  returned: success
  type: list
  elements: dict
"""

import datetime

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.args_common import KUBE_ARGS
from ansible_collections.podmig.live.plugins.module_utils.kube import ApiException, core_api



def argspec() -> dict:
    return {
        "namespace": {"type": "str", "default": "default"},
        "name": {"type": "str", "required": True},
        "condition": {"type": "str", "default": "podmig.live/restored"},
        "status": {"type": "bool", "default": True},
        "reason": {"type": "str", "default": "PodmigRestored"},
        "message": {"type": "str", "default": ""},
        **KUBE_ARGS,
    }


def wanted_condition(params: dict, now: datetime.datetime) -> dict:
    return {"type": params["condition"], "status": "True" if params["status"] else "False",
            "reason": params["reason"], "message": params["message"],
            "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")}


def needs_change(conditions: list[dict], wanted: dict) -> bool:
    for condition in conditions:
        if condition.get("type") == wanted["type"]:
            return condition.get("status") != wanted["status"]
    return True


def main() -> None:
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    params = module.params
    api = core_api(module)
    try:
        pod = api.read_namespaced_pod_status(params["name"], params["namespace"])
        conditions = [api.api_client.sanitize_for_serialization(c) for c in pod.status.conditions or []]
        wanted = wanted_condition(params, datetime.datetime.now(datetime.timezone.utc))
        if not needs_change(conditions, wanted):
            module.exit_json(changed=False, conditions=conditions)
        if module.check_mode:
            module.exit_json(changed=True, conditions=conditions)
        # A strategic merge patch merges status.conditions by type: the other conditions stay.
        patched = api.patch_namespaced_pod_status(params["name"], params["namespace"],
                                                  {"status": {"conditions": [wanted]}})
        module.exit_json(changed=True, conditions=[api.api_client.sanitize_for_serialization(c)
                                                   for c in patched.status.conditions or []])
    except ApiException as exc:
        module.fail_json(msg="pod %s/%s: %s %s" % (params["namespace"], params["name"], exc.status, exc.reason),
                         body=exc.body)
    except OSError as exc:
        module.fail_json(msg="cannot reach the cluster: %s" % exc)


if __name__ == "__main__":
    main()
