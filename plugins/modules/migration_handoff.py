#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: migration_handoff
short_description: The frozen part of a container migration on the source node, in one step
version_added: 0.1.0
description:
  - Freezes the container and takes the final checkpoint (held frozen for C(cold), C(delta) and
    C(precopy); a lazy dump serving pages for C(postcopy)), captures the final delta of its writable
    layer, sends both to the target with rsync over SSH, and drops C(READY) into I(signal_dest) on the
    target, where M(podmig.live.migration_landing) is waiting.
  - One module, so that no Ansible round trip lengthens the pause.
  - On any failure the container is resumed (or the lazy dump aborted) before the error returns.
    After success the source stays frozen (or serving pages) until the playbook commits
    (M(podmig.live.container_remove)) or rolls back (M(podmig.live.container_thaw)).
author:
  - podmig developers
extends_documentation_fragment:
  - podmig.live.runtime.TRANSFER
  - podmig.live.runtime
  - podmig.live.runtime.CRIU
options:
  strategy:
    description: The migration strategy (decides how the final checkpoint is taken).
    type: str
    choices: [cold, delta, precopy, postcopy]
    required: true
  image_dir:
    description: Directory for the final images on this node (emptied first).
    type: path
    required: true
  parent_dir:
    description: The last pre-dump round (C(precopy)).
    type: path
  page_server:
    description: C(ADDRESS:PORT) this node serves pages on (C(postcopy)).
    type: str
  send_dir:
    description: What to send to I(images_dest); defaults to I(image_dir). For C(precopy), the directory holding every round and the final dump, so the relative parent links hold.
    type: path
  images_dest:
    description: Directory on the target receiving the images.
    type: path
    required: true
  rootfs_upperdir:
    description: The container's writable layer (overlay upperdir). Omit when there is none to move.
    type: path
  rootfs_delta_dir:
    description: Where the final writable-layer delta is written here.
    type: path
  rootfs_previous:
    description: The pre-sync's delta dir (its manifest is the base of the final delta).
    type: path
  rootfs_dest:
    description: Directory on the target receiving the final delta.
    type: path
  signal_dest:
    description: Directory on the target where C(READY) is dropped last.
    type: path
    required: true
  dest_host:
    description: Address of the target node.
    type: str
    required: true
  criu_path:
    description: The criu binary (found on PATH when omitted).
    type: path
attributes:
  check_mode:
    support: none
  diff_mode:
    support: none
  idempotent:
    support: none
seealso:
  - module: podmig.live.migration_landing
"""

EXAMPLES = r"""
- name: Freeze, dump, send, signal
  podmig.live.migration_handoff:
    container: app
    strategy: delta
    image_dir: /var/lib/podmig/migrations/app/final
    images_dest: /var/lib/podmig/migrations/app/images
    signal_dest: /var/lib/podmig/migrations/app/signal
    dest_host: 10.89.7.22
    ssh_private_key: /root/.ssh/podmig_ed25519
    known_hosts_file: /etc/podmig/known_hosts
"""

RETURN = r"""
frozen_at:
  description: When the freeze began (epoch seconds).
  returned: success
  type: float
signalled_at:
  description: When READY reached the target (epoch seconds).
  returned: success
  type: float
source_frozen_s:
  description: Seconds from the freeze to READY.
  returned: success
  type: float
checkpoint:
  description: The final checkpoint's result (stats, image_bytes, ...).
  returned: success
  type: dict
bytes_sent:
  description: Bytes sent in the frozen phase.
  returned: success
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.args_common import CRIU_OPTION_ARGS, RUNTIME_ARGS, TRANSFER_ARGS
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.migration.handoff import handoff


def argspec() -> dict:
    spec = dict(RUNTIME_ARGS)
    spec.update(CRIU_OPTION_ARGS)
    spec.update(TRANSFER_ARGS)
    spec.update(
        strategy={"type": "str", "required": True, "choices": ["cold", "delta", "precopy", "postcopy"]},
        image_dir={"type": "path", "required": True},
        parent_dir={"type": "path"},
        page_server={"type": "str"},
        send_dir={"type": "path"},
        images_dest={"type": "path", "required": True},
        rootfs_upperdir={"type": "path"},
        rootfs_delta_dir={"type": "path"},
        rootfs_previous={"type": "path"},
        rootfs_dest={"type": "path"},
        signal_dest={"type": "path", "required": True},
        dest_host={"type": "str", "required": True},
        criu_path={"type": "path"},
    )
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=argspec(),
        supports_check_mode=False,
        required_if=[("strategy", "postcopy", ("page_server",)),
                     ("strategy", "precopy", ("parent_dir",))],
        required_by={"rootfs_upperdir": ("rootfs_delta_dir", "rootfs_dest")},
    )
    runner = CommandRunner(module)
    try:
        result = handoff(module, runner, module.params)
    except PodmigError as err:
        module.fail_json(commands=runner.commands, **err.to_result())
    module.exit_json(changed=True, commands=runner.commands, **result)


if __name__ == "__main__":
    main()
