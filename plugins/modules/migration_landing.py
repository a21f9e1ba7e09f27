#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: migration_landing
short_description: The frozen part of a container migration on the target node, in one step
version_added: 0.1.0
description:
  - Started before the source is frozen (as an C(async) task with C(poll 0)), it waits for C(READY)
    from M(podmig.live.migration_handoff), applies the final writable-layer deltas, mounts the rootfs
    overlay and restores the container (lazily for post-copy), in one process.
  - A failure removes the half-restored container and the mount it made; the playbook then resumes
    the source.
author:
  - podmig developers
extends_documentation_fragment:
  - podmig.live.runtime
  - podmig.live.runtime.CRIU
  - podmig.live.runtime.RESTORE
options:
  bundle:
    description: The OCI bundle to restore into (its config.json is the source's).
    type: path
    required: true
  image_dir:
    description: The final images on this node.
    type: path
    required: true
  work_dir:
    description: CRIU's work directory for the restore.
    type: path
  signal_dir:
    description: Directory where C(READY) appears.
    type: path
    required: true
  wait_timeout:
    description: Seconds to wait for C(READY).
    type: int
    default: 600
  rootfs_deltas:
    description: Delta directories to apply to I(rootfs_upperdir) in order, after C(READY).
    type: list
    elements: path
    default: []
  rootfs_upperdir:
    description: The container's writable layer on this node.
    type: path
  rootfs_mount:
    description: Mount the rootfs overlay after applying the deltas - C(lowerdirs) (list, top first), C(upperdir), C(workdir), C(target).
    type: dict
  lazy:
    description: Restore with lazy pages (post-copy).
    type: bool
    default: false
  page_server:
    description: The source's C(ADDRESS:PORT) (post-copy).
    type: str
  cgroups_path:
    description: cgroupsPath to set in the bundle before restoring.
    type: str
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
  - module: podmig.live.migration_handoff
"""

EXAMPLES = r"""
- name: Wait for the source, then restore at once
  podmig.live.migration_landing:
    container: app
    bundle: /var/lib/podmig/migrations/app/bundle
    image_dir: /var/lib/podmig/migrations/app/images
    signal_dir: /var/lib/podmig/migrations/app/signal
  async: 900
  poll: 0
  register: landing_job
"""

RETURN = r"""
ready_at:
  description: When READY was seen (epoch seconds).
  returned: success
  type: float
restored_at:
  description: When the restored container ran (epoch seconds).
  returned: success
  type: float
target_pause_s:
  description: Seconds from READY to the running container.
  returned: success
  type: float
restore:
  description: The restore's result (pid, status, stats, lazy_pages_pid).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.args_common import CRIU_OPTION_ARGS, RESTORE_ARGS, RUNTIME_ARGS
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.migration.landing import land


def argspec() -> dict:
    spec = dict(RUNTIME_ARGS)
    spec.update(CRIU_OPTION_ARGS)
    spec.update(RESTORE_ARGS)
    spec.update(
        bundle={"type": "path", "required": True},
        image_dir={"type": "path", "required": True},
        work_dir={"type": "path"},
        signal_dir={"type": "path", "required": True},
        wait_timeout={"type": "int", "default": 600},
        rootfs_deltas={"type": "list", "elements": "path", "default": []},
        rootfs_upperdir={"type": "path"},
        rootfs_mount={"type": "dict"},
        lazy={"type": "bool", "default": False},
        page_server={"type": "str"},
        cgroups_path={"type": "str"},
        criu_path={"type": "path"},
    )
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=argspec(),
        supports_check_mode=False,
        required_if=[("lazy", True, ("page_server",))],
    )
    runner = CommandRunner(module)
    try:
        result = land(module, runner, module.params)
    except PodmigError as err:
        module.fail_json(commands=runner.commands, **err.to_result())
    module.exit_json(changed=True, commands=runner.commands, **result)


if __name__ == "__main__":
    main()
