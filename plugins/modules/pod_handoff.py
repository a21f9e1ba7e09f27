#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pod_handoff
short_description: The frozen part of a pod migration on the source node, in one step
version_added: 0.2.0
description:
  - Freezes all application containers of a Kubernetes pod at one point (the pod's freezer cgroup
    as a whole), dumps each with CRIU through runc while holding it frozen (kubelet keeps seeing it
    RUNNING, so it never restarts it), sends the images and each container's raw writable layer to
    the staging directory on the target that podmig's patched containerd restores from, starts the
    target's C(criu lazy-pages) daemons for C(postcopy), and drops C(READY) for each container last.
  - With I(state=rolled_back), resumes the containers of a pod held frozen by an earlier hand-off
    (the rollback after a failed restore on the target).
  - One module, so that no Ansible round trip lengthens the pause. On a failure before the first
    C(READY) every container is resumed before the error returns. After a C(READY) was given the
    target may be restoring already, so the pod stays frozen (C(held_frozen) in the result); fence
    the target with M(podmig.live.pod_fence), then resume with I(state=rolled_back).
author:
  - podmig developers
extends_documentation_fragment:
  - podmig.live.runtime.TRANSFER
  - podmig.live.runtime.CRIU
options:
  state:
    description: C(handed_off) freezes, dumps, sends and signals; C(rolled_back) resumes the pod.
    type: str
    choices: [handed_off, rolled_back]
    default: handed_off
  containers:
    description: The application containers of the pod (not the sandbox).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The container's name in the pod spec (the staging directory's name).
        type: str
        required: true
      id:
        description: The CRI container id (runc's container id).
        type: str
        required: true
      upperdir:
        description: The container's overlay upper directory, sent raw (omit for none).
        type: path
  volumes:
    description:
      - The pod's emptyDir volumes, copied (modes, owners, xattrs kept) into the new pod's volume
        directories on the target before READY.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The volume's name.
        type: str
        required: true
      src:
        description: Its directory on this node (C(/var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>)).
        type: path
        required: true
      dest:
        description: The new pod's directory of the volume on the target.
        type: path
        required: true
  runtime_root:
    description: runc's state root of the CRI containers.
    type: path
    default: /run/containerd/runc/k8s.io
  runc_path:
    description: The runc binary; found on PATH when omitted.
    type: path
  criu_path:
    description: The criu binary on this node; found on PATH when omitted.
    type: path
  target_criu_path:
    description: The criu binary on the target (starts the lazy-pages daemons for C(postcopy)).
    type: path
    default: criu
  strategy:
    description:
      - C(cold) dumps and sends everything while the pod is frozen.
      - C(delta) first copies the memory in rounds while the pod runs (full dumps with
        C(--leave-running), only changed blocks sent), then dumps and sends frozen what changed since.
      - C(postcopy) sends the images without memory pages and serves those from here.
    type: str
    choices: [cold, delta, postcopy]
    default: cold
  work_dir:
    description: Private directory on this node for the dumps (one sub-directory per container).
    type: path
  pod_freezer:
    description: The pod's freezer cgroup directory; found from the containers' cgroups when omitted.
    type: path
  page_server_address:
    description: Address of this node that the target's lazy-pages daemons connect to (C(postcopy)).
    type: str
  page_server_port:
    description: First port of the page servers (one per container, counting up).
    type: int
    default: 27100
  dest_dir:
    description: The staging directory on the target (the shell pod's C(podmig.live/restore-from)).
    type: path
  dest_host:
    description: Address of the target node.
    type: str
  convergence:
    description:
      - When the copy rounds of C(delta) stop (keys C(max_rounds), C(min_rounds),
        C(dirty_bytes_threshold), C(max_growth), C(time_budget_s); the defaults of
        C(podmig.live.migration_plan)'s convergence rules otherwise).
    type: dict
    default: {}
  shell_pod:
    description:
      - The shell pod the checkpoint is for, C(namespace/name/uid). Written into each C(READY) as
        C(pod=namespace/name/uid); podmig's containerd restores the images only into that pod (any
        other pod carrying the same C(podmig.live/restore-from) annotation is refused).
    type: str
attributes:
  check_mode:
    support: full
    details: Finds the pod's freezer cgroup and checks the containers run; freezes nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
seealso:
  - module: podmig.live.migration_handoff
  - module: podmig.live.pod_fence
"""

EXAMPLES = r"""
- name: Freeze the pod, dump its containers, stage them on the target
  podmig.live.pod_handoff:
    containers:
      - name: app
        id: 3f5c0a...
        upperdir: /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/42/fs
    strategy: cold
    work_dir: /var/lib/podmig/out/0123abcd
    dest_dir: /var/lib/podmig/in/0123abcd
    dest_host: 10.89.7.12
    ssh_private_key: /root/.ssh/podmig_ed25519
    known_hosts_file: /etc/podmig/known_hosts

- name: Roll back (the restore on the target failed)
  podmig.live.pod_handoff:
    state: rolled_back
    containers: "{{ podmig_containers }}"
"""

RETURN = r"""
pod_freezer:
  description: The pod's freezer cgroup that was frozen as a whole.
  returned: always
  type: str
containers:
  description: Per container name, its checkpoint result and the rsync statistics of its images and upper layer.
  returned: success
  type: dict
frozen_at:
  description: When the freeze began (epoch seconds).
  returned: success
  type: float
source_frozen_s:
  description: Seconds from the freeze to the last READY.
  returned: success
  type: float
bytes_sent:
  description: Bytes sent in all (copy rounds and the frozen phase).
  returned: success
  type: int
final_bytes_sent:
  description: Bytes sent in the frozen phase.
  returned: success
  type: int
rounds:
  description: The copy rounds of C(delta) while the pod ran - round, dirty_bytes (changed blocks sent), bytes_sent, duration_s.
  returned: success with strategy delta
  type: list
  elements: dict
convergence:
  description: Why the copy rounds stopped.
  returned: success with strategy delta
  type: str
rolled_back:
  description: What the rollback did, per container.
  returned: on failure before the first READY and with state=rolled_back
  type: list
  elements: str
resumed_at:
  description: Epoch seconds when the rollback had resumed the containers.
  returned: with state=rolled_back
  type: float
held_frozen:
  description: The hand-off failed after a READY was given; the pod is still held frozen.
  returned: on such a failure
  type: bool
signalled:
  description: The containers whose READY had been given when the hand-off failed.
  returned: on a failure with held_frozen
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.args_common import CRIU_OPTION_ARGS, TRANSFER_ARGS
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.migration.pod_handoff import pod_handoff, pod_rollback


def argspec() -> dict:
    spec = dict(CRIU_OPTION_ARGS)
    spec.update(TRANSFER_ARGS)
    spec.update(
        state={"type": "str", "default": "handed_off", "choices": ["handed_off", "rolled_back"]},
        containers={"type": "list", "elements": "dict", "required": True, "options": {
            "name": {"type": "str", "required": True},
            "id": {"type": "str", "required": True},
            "upperdir": {"type": "path"},
        }},
        volumes={"type": "list", "elements": "dict", "default": [], "options": {
            "name": {"type": "str", "required": True},
            "src": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
        }},
        runtime_root={"type": "path", "default": "/run/containerd/runc/k8s.io"},
        runc_path={"type": "path"},
        criu_path={"type": "path"},
        target_criu_path={"type": "path", "default": "criu"},
        strategy={"type": "str", "default": "cold", "choices": ["cold", "delta", "postcopy"]},
        work_dir={"type": "path"},
        pod_freezer={"type": "path"},
        page_server_address={"type": "str"},
        page_server_port={"type": "int", "default": 27100},
        dest_dir={"type": "path"},
        dest_host={"type": "str"},
        shell_pod={"type": "str"},
        convergence={"type": "dict", "default": {}},
    )
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=argspec(),
        supports_check_mode=True,
        required_if=[("state", "handed_off", ("work_dir", "dest_dir", "dest_host", "shell_pod")),
                     ("strategy", "postcopy", ("page_server_address", "work_dir"))],
    )
    runner = CommandRunner(module)
    try:
        if module.params["state"] == "rolled_back":
            result = pod_rollback(module, runner, module.params) if not module.check_mode else {"changed": True}
        else:
            result = pod_handoff(module, runner, module.params)
    except PodmigError as err:
        module.fail_json(commands=runner.commands, **err.to_result())
    module.exit_json(commands=runner.commands, **result)


if __name__ == "__main__":
    main()
