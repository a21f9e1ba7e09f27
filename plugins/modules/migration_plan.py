#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: migration_plan
short_description: Check a container migration against both nodes and choose its strategy
version_added: 0.1.0
description:
  - Pure decision on facts gathered from the source and the target (M(podmig.live.criu_info),
    M(podmig.live.container_info), free disk, image layers present). Nothing on any node is touched.
  - Fails with every refusal at once (same node, unknown or stopped container, a migration already
    in progress, CRIU missing or failing, different architecture, missing CPU flags, too little disk,
    image layers missing on the target, the id taken on the target, an unsupported strategy), so that
    nothing is frozen when a migration cannot succeed.
  - Runs on the controller (C(delegate_to: localhost)).
author:
  - podmig developers
options:
  container:
    description: Container id.
    type: str
    required: true
  source_node:
    description: Inventory name of the source node.
    type: str
    required: true
  target_node:
    description: Inventory name of the target node.
    type: str
    required: true
  strategy:
    description: Requested strategy; C(auto) picks the first of I(auto_order) both nodes support.
    type: str
    choices: [auto, cold, precopy, delta, postcopy]
    default: auto
  auto_order:
    description: Preference order for C(auto).
    type: list
    elements: str
    default: [precopy, postcopy, delta, cold]
  source:
    description: Source facts - C(criu) (criu_info facts), C(container) (container_info result), C(locked), C(lock_path).
    type: dict
    required: true
  target:
    description: Target facts - C(criu), C(free_bytes), C(missing_lowerdirs), C(container_exists).
    type: dict
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Plan - refuse before anything is frozen
  podmig.live.migration_plan:
    container: app
    source_node: node-a
    target_node: node-b
    strategy: auto
    source:
      criu: "{{ hostvars['node-a'].podmig_criu }}"
      container: "{{ source_container }}"
    target:
      criu: "{{ hostvars['node-b'].podmig_criu }}"
      free_bytes: 10737418240
      missing_lowerdirs: []
  delegate_to: localhost
  register: plan
"""

RETURN = r"""
strategy:
  description: The strategy to use.
  returned: success
  type: str
  sample: postcopy
reason:
  description: Why this strategy.
  returned: success
  type: str
risk:
  description: The risk this strategy carries.
  returned: success
  type: str
checks:
  description: Every check with C(name), C(ok) and C(detail).
  returned: always
  type: list
  elements: dict
refusals:
  description: The failed checks, one line each.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.migration.plan import plan_migration
from ansible_collections.podmig.live.plugins.module_utils.strategy import DEFAULT_AUTO_ORDER


def argspec() -> dict:
    return {
        "container": {"type": "str", "required": True},
        "source_node": {"type": "str", "required": True},
        "target_node": {"type": "str", "required": True},
        "strategy": {"type": "str", "default": "auto", "choices": ["auto", "cold", "precopy", "delta", "postcopy"]},
        "auto_order": {"type": "list", "elements": "str", "default": list(DEFAULT_AUTO_ORDER)},
        "source": {"type": "dict", "required": True},
        "target": {"type": "dict", "required": True},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    params = module.params
    plan = plan_migration(
        {key: params[key] for key in ("container", "source_node", "target_node", "strategy", "auto_order")},
        params["source"],
        params["target"],
    )
    if not plan["ok"]:
        module.fail_json(msg="migration of %s refused: %s" % (params["container"], "; ".join(plan["refusals"])),
                         **plan)
    module.exit_json(changed=False, **plan)


if __name__ == "__main__":
    main()
