#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_restore
short_description: Restore a runc container from a CRIU checkpoint, optionally with lazy pages
version_added: 0.1.0
description:
  - Runs C(runc restore --detach) from I(image_dir) into I(bundle). A pre-dump chain is followed
    through the images' relative C(parent) link.
  - With I(lazy), starts C(criu lazy-pages) against the source's page server first (post-copy);
    the container resumes at once and its memory is fetched on demand and in the background.
  - Refuses before touching anything when the images are missing, the bundle has no config.json, the
    container id is already taken, or the kernel lacks what lazy pages need.
  - Idempotent - a container already restored from the same images is reported unchanged.
author:
  - podmig developers
extends_documentation_fragment:
  - podmig.live.runtime
  - podmig.live.runtime.CRIU
  - podmig.live.runtime.RESTORE
options:
  bundle:
    description: The OCI bundle (config.json and rootfs) to restore into.
    type: path
    required: true
  image_dir:
    description: The checkpoint images (the final dump).
    type: path
    required: true
  work_dir:
    description: CRIU's work directory (restore.log, statistics, the lazy-pages socket). Defaults to I(image_dir) with C(.restore) appended.
    type: path
  lazy:
    description: Restore with lazy pages from the source's page server (post-copy).
    type: bool
    default: false
  page_server:
    description: C(ADDRESS:PORT) of the source's page server (required with I(lazy)).
    type: str
  cgroups_path:
    description: Set C(linux.cgroupsPath) in the bundle's config.json before restoring (for example the target pod's cgroup).
    type: str
  lazy_socket_timeout:
    description: Seconds to wait for the lazy-pages daemon's socket.
    type: int
    default: 30
  criu_path:
    description: The criu binary (for the lazy-pages daemon and runc's PATH). Found on PATH when omitted.
    type: path
attributes:
  check_mode:
    support: full
    details: Validates and returns the commands that would run.
  diff_mode:
    support: none
  idempotent:
    support: full
notes:
  - Files the process had open must exist on this node at the same paths (the writable layer is
    synchronised with M(podmig.live.rootfs_diff), volumes by the caller).
seealso:
  - module: podmig.live.container_checkpoint
"""

EXAMPLES = r"""
- name: Restore a container from its final dump
  podmig.live.container_restore:
    container: ct1
    runtime_root: /run/runc
    bundle: /var/lib/podmig/bundles/ct1
    image_dir: /var/lib/podmig/ck/ct1/final

- name: Post-copy restore, pulling pages from the source node
  podmig.live.container_restore:
    container: ct1
    bundle: /var/lib/podmig/bundles/ct1
    image_dir: /var/lib/podmig/ck/ct1/lazy
    lazy: true
    page_server: "10.0.0.11:27000"
"""

RETURN = r"""
pid:
  description: Host pid of the restored container's init process.
  returned: success and not check mode
  type: int
status:
  description: runc status after the restore.
  returned: success and not check mode
  type: str
  sample: running
duration_s:
  description: Wall time of C(runc restore) (the target-side part of the pause).
  returned: success and not check mode and changed
  type: float
stats:
  description: CRIU's restore statistics (C(restore_time_us), C(forking_time_us), C(pages_restored), ...).
  returned: success and not check mode and changed
  type: dict
lazy_pages_pid:
  description: Pid of the background C(criu lazy-pages) daemon; it exits when every page has arrived.
  returned: lazy and not check mode and changed
  type: int
commands:
  description: The commands that ran (or would run in check mode).
  returned: always
  type: list
  elements: list
log:
  description: CRIU's restore log.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.args_common import CRIU_OPTION_ARGS, RESTORE_ARGS, RUNTIME_ARGS
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.restore import restore_container


def argspec() -> dict:
    spec = dict(RUNTIME_ARGS)
    spec.update(CRIU_OPTION_ARGS)
    spec.update(RESTORE_ARGS)
    spec.update(
        bundle={"type": "path", "required": True},
        image_dir={"type": "path", "required": True},
        work_dir={"type": "path"},
        lazy={"type": "bool", "default": False},
        page_server={"type": "str"},
        cgroups_path={"type": "str"},
        lazy_socket_timeout={"type": "int", "default": 30},
        criu_path={"type": "path"},
    )
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=argspec(),
        supports_check_mode=True,
        required_if=[("lazy", True, ("page_server",))],
    )
    runner = CommandRunner(module)
    try:
        changed, result = restore_container(module, runner, module.params)
    except PodmigError as err:
        module.fail_json(commands=runner.commands, **err.to_result())
    module.exit_json(changed=changed, commands=runner.commands, **result)


if __name__ == "__main__":
    main()
