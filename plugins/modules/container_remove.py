#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_remove
short_description: Remove a runc container for good (the commit step on the source)
version_added: 0.1.0
description:
  - Kills the container (a frozen one too; on cgroup v1 runc thaws it to deliver SIGKILL) and deletes
    it. Used after a migration has committed, and to clean a half-finished target.
  - Idempotent - an absent container is reported unchanged.
author:
  - podmig developers
extends_documentation_fragment:
  - podmig.live.runtime
options:
  timeout:
    description: Seconds to wait for the container to stop after SIGKILL.
    type: int
    default: 10
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Commit - the source container is gone for good
  podmig.live.container_remove:
    container: app
    runtime_root: /run/runc
"""

RETURN = r"""
status_before:
  description: runc status before (absent when there was nothing to remove).
  returned: always
  type: str
commands:
  description: The commands that ran (or would run in check mode).
  returned: always
  type: list
  elements: list
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.args_common import RUNTIME_ARGS
from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner, find_binary
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.runc import RuncClient


def argspec() -> dict:
    spec = dict(RUNTIME_ARGS)
    spec["timeout"] = {"type": "int", "default": 10}
    return spec


def remove(module: AnsibleModule, runner: CommandRunner) -> tuple[bool, dict]:
    params = module.params
    runc = RuncClient(runner, find_binary(module, "runc", params["runc_path"]), params["runtime_root"])
    state = runc.state(params["container"])
    if state is None:
        return False, {"status_before": "absent"}
    before = state.get("status")
    if module.check_mode:
        runner.commands.append(runc.argv("delete", "--force", params["container"]))
        return True, {"status_before": before}
    if before in ("running", "paused", "created"):
        runc.kill(params["container"], "KILL")
        deadline = time.monotonic() + params["timeout"]
        while (runc.state(params["container"]) or {}).get("status") not in (None, "stopped"):
            if time.monotonic() > deadline:
                raise PodmigError("container %s did not stop within %d s after SIGKILL"
                                  % (params["container"], params["timeout"]))
            time.sleep(0.05)
    runc.delete(params["container"], force=True)
    return True, {"status_before": before}


def main() -> None:
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    runner = CommandRunner(module)
    try:
        changed, result = remove(module, runner)
    except PodmigError as err:
        module.fail_json(commands=runner.commands, **err.to_result())
    module.exit_json(changed=changed, commands=runner.commands, **result)


if __name__ == "__main__":
    main()
