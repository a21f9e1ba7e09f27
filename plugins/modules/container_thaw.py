#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_thaw
short_description: Resume a container held frozen after a checkpoint (the rollback path)
version_added: 0.1.0
description:
  - A container checkpointed with I(hold_frozen) by M(podmig.live.container_checkpoint) stays paused
    with all its processes and memory. This module resumes it (C(runc resume)), so the source goes on
    serving when a migration fails after the freeze.
  - A container frozen by a lazy (post-copy) dump whose target has not started fetching pages is
    resumed by aborting that dump (give I(checkpoint_work_dir)); once the target fetches pages, a
    post-copy cannot be rolled back and the module says so.
  - A running container is left alone and reported unchanged. A container that no longer exists or
    has stopped cannot be thawed and fails with the reason.
author:
  - podmig developers
extends_documentation_fragment:
  - podmig.live.runtime
options:
  checkpoint_work_dir:
    description:
      - The I(work_dir) of the checkpoint to roll back. Needed to abort a pending lazy dump.
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
seealso:
  - module: podmig.live.container_checkpoint
"""

EXAMPLES = r"""
- name: Roll back - the source goes on running with its state
  podmig.live.container_thaw:
    container: ct1
    runtime_root: /run/runc
"""

RETURN = r"""
status:
  description: runc status afterwards.
  returned: success
  type: str
  sample: running
status_before:
  description: runc status before.
  returned: success
  type: str
  sample: paused
lazy_dump_aborted:
  description: Whether a pending lazy dump was aborted to resume the container.
  returned: success
  type: bool
commands:
  description: The commands that ran (or would run in check mode).
  returned: always
  type: list
  elements: list
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.args_common import RUNTIME_ARGS
from ansible_collections.podmig.live.plugins.module_utils.checkpoint import LAZY_STATE, abort_lazy_dump
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner, find_binary
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.runc import RuncClient


def argspec() -> dict:
    spec = dict(RUNTIME_ARGS)
    spec["checkpoint_work_dir"] = {"type": "path"}
    return spec


def thaw(module: AnsibleModule, runner: CommandRunner) -> tuple[bool, dict]:
    params = module.params
    runc = RuncClient(runner, find_binary(module, "runc", params["runc_path"]), params["runtime_root"])
    state = runc.require(params["container"], ("running", "paused"))
    before = state.get("status")
    work_dir = params["checkpoint_work_dir"]
    if work_dir and os.path.exists(os.path.join(work_dir, LAZY_STATE)):
        if module.check_mode:
            return True, {"status": "running", "status_before": before, "lazy_dump_aborted": True}
        aborted = abort_lazy_dump(work_dir)
        if aborted and aborted.get("aborted"):
            after = (runc.state(params["container"]) or {}).get("status", "absent")
            if after != "running":
                raise PodmigError("the lazy dump was aborted but the container is %s" % after, status=after)
            return True, {"status": after, "status_before": before, "lazy_dump_aborted": True}
    if before == "running":
        return False, {"status": "running", "status_before": before, "lazy_dump_aborted": False}
    if module.check_mode:
        runner.commands.append(runc.argv("resume", params["container"]))
        return True, {"status": "running", "status_before": before, "lazy_dump_aborted": False}
    runc.resume(params["container"])
    after = (runc.state(params["container"]) or {}).get("status", "absent")
    if after != "running":
        raise PodmigError("runc resume succeeded but the container is %s" % after, status=after)
    return True, {"status": after, "status_before": before, "lazy_dump_aborted": False}


def main() -> None:
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    runner = CommandRunner(module)
    try:
        changed, result = thaw(module, runner)
    except PodmigError as err:
        module.fail_json(commands=runner.commands, **err.to_result())
    module.exit_json(changed=changed, commands=runner.commands, **result)


if __name__ == "__main__":
    main()
