#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pod_fence
short_description: Make sure no restored copy of a pod runs on the target before its source resumes
version_added: 0.3.0
description:
  - Runs on the target node of a failed pod migration, after the shell pod's deletion was asked
    for and before the source pod is resumed, so that the pod never runs twice.
  - Withdraws the staged checkpoint (each container's C(READY) marker becomes C(WITHDRAWN), so a
    container start that podmig's containerd still holds will not restore it), then waits until no
    process is left in the shell pod's cgroups (found by the pod's uid, cgroup v1 freezer hierarchy
    or cgroup v2), and after I(timeout) kills what is left (frozen first, then C(SIGKILL)).
  - Fails, with the processes that are left, when the node still runs any of them after the kill.
author:
  - podmig developers
options:
  pod_uid:
    description: The uid of the shell pod (the target pod of the migration).
    type: str
    required: true
  staging_dir:
    description: The migration's staging directory on this node (C(<root>/in/<id>)), whose READY markers are withdrawn.
    type: path
  timeout:
    description: Seconds to wait for kubelet to stop the shell pod's processes before killing them.
    type: float
    default: 30
  kill:
    description: Kill the processes still there after I(timeout). With C(false) the module only waits and reports.
    type: bool
    default: true
  kill_timeout:
    description: Seconds to wait for the killed processes to be gone.
    type: float
    default: 10
  cgroup_root:
    description: Where the cgroup hierarchies are mounted.
    type: path
    default: /sys/fs/cgroup
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
seealso:
  - module: podmig.live.pod_handoff
"""

EXAMPLES = r"""
- name: Rollback | No restored copy on the target before the source resumes
  podmig.live.pod_fence:
    pod_uid: "{{ shell_pod_uid }}"
    staging_dir: /var/lib/podmig/in/app-mig-1a2b3c
    timeout: 30
  delegate_to: podmig-w2
"""

RETURN = r"""
clean:
  description: Whether no process of the shell pod is left on the node.
  returned: always
  type: bool
confirmed_at:
  description: Epoch seconds when the node was seen to run none of the shell pod's processes.
  returned: success
  type: float
cgroups:
  description: The shell pod's cgroup directories found on the node.
  returned: always
  type: list
  elements: str
cgroup_version:
  description: C(v1) (freezer hierarchy searched) or C(v2).
  returned: always
  type: str
processes_before:
  description: The processes of the shell pod found first, each with pid and comm.
  returned: always
  type: list
  elements: dict
processes_left:
  description: The processes still there at the end (empty when clean).
  returned: success and on failure
  type: list
  elements: dict
killed:
  description: The pids that were sent SIGKILL after the timeout.
  returned: always
  type: list
  elements: int
withdrawn:
  description: The containers whose READY marker was withdrawn (none had been restored from it yet).
  returned: always
  type: list
  elements: str
consumed:
  description: The containers whose checkpoint had been restored already (CONSUMED).
  returned: success
  type: list
  elements: str
waited_s:
  description: Seconds the fence took.
  returned: success
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.migration.pod_fence import fence


def argspec() -> dict:
    return dict(
        pod_uid={"type": "str", "required": True},
        staging_dir={"type": "path"},
        timeout={"type": "float", "default": 30},
        kill={"type": "bool", "default": True},
        kill_timeout={"type": "float", "default": 10},
        cgroup_root={"type": "path", "default": "/sys/fs/cgroup"},
    )


def main() -> None:
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    try:
        result = fence(module.params, check_mode=module.check_mode)
    except PodmigError as err:
        module.fail_json(**err.to_result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
