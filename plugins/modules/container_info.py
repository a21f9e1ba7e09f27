#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_info
short_description: Describe a runc container for migration
version_added: 0.1.0
description:
  - Returns a container's init pid, status, bundle and rootfs, its writable layer (the overlay
    C(upperdir)) and read-only layers from the host's mountinfo, its cgroup paths, namespaces and
    resident memory.
  - Works for plain runc containers and for containerd's (use I(runtime_root)
    C(/run/containerd/runc/k8s.io) for Kubernetes pods).
author:
  - podmig developers
extends_documentation_fragment:
  - podmig.live.runtime
options:
  must_exist:
    description:
      - Fail when the container does not exist. When false, C(exists=false) is returned instead.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Describe a containerd-managed container
  podmig.live.container_info:
    container: 5f2c9a0d3e1b
    runtime_root: /run/containerd/runc/k8s.io
  register: ct

- name: Show its writable layer
  ansible.builtin.debug:
    msg: "{{ ct.overlay.upperdir }} ({{ ct.rss_bytes | human_readable }} resident)"
"""

RETURN = r"""
exists:
  description: Whether runc knows the container.
  returned: always
  type: bool
status:
  description: runc's status (created, running, paused, stopped).
  returned: when the container exists
  type: str
  sample: running
pid:
  description: Host pid of the container's init process.
  returned: when the container exists
  type: int
pids:
  description: Host pids of all the container's processes.
  returned: when the container is running or paused
  type: list
  elements: int
bundle:
  description: The OCI bundle directory.
  returned: when the container exists
  type: str
rootfs:
  description: The root filesystem path.
  returned: when the container exists
  type: str
overlay:
  description: The rootfs overlay mount's C(upperdir), C(workdir) and C(lowerdirs) (top first), or null when the rootfs is not an overlay.
  returned: when the container exists
  type: dict
cgroups:
  description: Controller to cgroup path of the init process.
  returned: when the container is running or paused
  type: dict
namespaces:
  description: Namespace type to namespace id of the init process.
  returned: when the container is running or paused
  type: dict
rss_bytes:
  description: Sum of the resident memory of the container's processes.
  returned: when the container is running or paused
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils import mountinfo, procfs
from ansible_collections.podmig.live.plugins.module_utils.args_common import RUNTIME_ARGS
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner, find_binary
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.runc import RuncClient


def argspec() -> dict:
    spec = dict(RUNTIME_ARGS)
    spec["must_exist"] = {"type": "bool", "default": True}
    return spec


def overlay_of(rootfs: str) -> dict | None:
    mounts = mountinfo.parse(procfs.mountinfo_text("self"))
    mount = mountinfo.find_mount(mounts, os.path.realpath(rootfs))
    if not mount or mount["fstype"] != "overlay":
        return None
    layers = mountinfo.overlay_layers(mount["super_options"])
    layers["mount_point"] = mount["mount_point"]
    return layers


def describe(runc: RuncClient, container: str, must_exist: bool) -> dict:
    state = runc.state(container)
    if state is None:
        if must_exist:
            raise runc.missing(container)
        return {"exists": False}
    info = {
        "exists": True,
        "status": state.get("status"),
        "pid": state.get("pid"),
        "bundle": state.get("bundle"),
        "rootfs": state.get("rootfs"),
        "created": state.get("created"),
        "annotations": state.get("annotations") or {},
        "overlay": overlay_of(state.get("rootfs") or ""),
    }
    if state.get("status") in ("running", "paused") and state.get("pid"):
        pid = int(state["pid"])
        pids = runc.pids(container)
        info.update(
            pids=pids,
            cgroups=procfs.cgroups(pid),
            namespaces=procfs.namespaces(pid),
            rss_bytes=procfs.rss_bytes(pids),
        )
    return info


def main() -> None:
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    runner = CommandRunner(module)
    try:
        runc = RuncClient(runner, find_binary(module, "runc", module.params["runc_path"]), module.params["runtime_root"])
        result = describe(runc, module.params["container"], module.params["must_exist"])
    except PodmigError as err:
        module.fail_json(commands=runner.commands, **err.to_result())
    module.exit_json(changed=False, commands=runner.commands, **result)


if __name__ == "__main__":
    main()
