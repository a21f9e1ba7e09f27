#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: criu_info
short_description: Gather CRIU and kernel facts that decide how containers can migrate
version_added: 0.1.0
description:
  - Reports the CRIU binary and version, the result of C(criu check), the kernel features that
    the migration strategies need (memory dirty tracking for pre-copy, userfaultfd for lazy pages,
    TCP repair, network-lock backends), the kernel, architecture, page size and CPU flags, and
    the strategies this node supports, each with the reason.
  - Sets the fact C(podmig_criu).
author:
  - podmig developers
options:
  criu_path:
    description: The criu binary; searched on PATH and in /usr/local/sbin when omitted.
    type: path
  min_version:
    description: The lowest CRIU version podmig accepts; older versions are reported as not usable.
    type: str
    default: "4.1"
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  idempotent:
    support: full
notes:
  - Nothing is changed on the node; the module only runs C(criu --version) and C(criu check).
seealso:
  - module: podmig.live.container_checkpoint
"""

EXAMPLES = r"""
- name: Read what this node's CRIU can do
  podmig.live.criu_info:

- name: Refuse nodes without lazy pages
  ansible.builtin.assert:
    that: podmig_criu.strategies.postcopy.supported
    fail_msg: "{{ podmig_criu.strategies.postcopy.reason }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts under the key C(podmig_criu).
  returned: always
  type: dict
  contains:
    podmig_criu:
      description: What CRIU and the kernel offer on this node.
      type: dict
      contains:
        installed:
          description: Whether a criu binary was found.
          type: bool
        path:
          description: The criu binary.
          type: str
        version:
          description: CRIU's version.
          type: str
          sample: "4.1.1"
        version_ok:
          description: Whether the version is at least I(min_version).
          type: bool
        check:
          description: C(criu check) result with C(ok) and C(message).
          type: dict
        features:
          description: Per feature C(supported) and CRIU's C(message).
          type: dict
          sample: {"mem_dirty_track": {"supported": false, "message": "Dirty tracking is OFF."}}
        network_lock_backends:
          description: Network lock backends usable here (iptables, nftables).
          type: list
          elements: str
        strategies:
          description: Per strategy (cold, precopy, delta, postcopy) C(supported) and C(reason).
          type: dict
        kernel:
          description: Kernel release.
          type: str
        arch:
          description: Machine architecture.
          type: str
        page_size:
          description: Memory page size in bytes.
          type: int
        pipe_max_size:
          description: C(fs.pipe-max-size); lazy pages need at least 4 MiB.
          type: int
        cpu_flags:
          description: CPU flags of the first CPU (a restored process may use any of them).
          type: list
          elements: str
"""

import os
import platform
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podmig.live.plugins.module_utils.command import CommandRunner
from ansible_collections.podmig.live.plugins.module_utils.criu import CriuClient, version_at_least
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.strategy import node_strategies


def argspec() -> dict:
    return {
        "criu_path": {"type": "path"},
        "min_version": {"type": "str", "default": "4.1"},
    }


def read_int(path: str) -> int:
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return 0


def cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return sorted(line.split(":", 1)[1].split())
    except OSError:
        pass
    return []


def host_facts() -> dict:
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "page_size": os.sysconf("SC_PAGE_SIZE"),
        "pipe_max_size": read_int("/proc/sys/fs/pipe-max-size"),
        "cpu_flags": cpu_flags(),
    }


def gather(module: AnsibleModule, runner: CommandRunner) -> dict:
    facts = host_facts()
    binary = module.params["criu_path"] or module.get_bin_path(
        "criu", opt_dirs=["/usr/local/sbin", "/usr/local/bin", "/usr/sbin"]
    )
    if module.params["criu_path"] and not os.access(module.params["criu_path"], os.X_OK):
        raise PodmigError("criu_path %s is not an executable file" % module.params["criu_path"])
    if not binary:
        facts.update(
            installed=False,
            path=None,
            version=None,
            version_ok=False,
            check={"ok": False, "message": "criu is not installed (the podmig.live.criu role installs it)"},
            features={},
            network_lock_backends=[],
        )
        facts["strategies"] = node_strategies(facts)
        return facts

    client = CriuClient(runner, binary)
    version = client.version()
    check = client.check()
    features = client.features()
    version_ok = version_at_least(version, module.params["min_version"])
    if not version_ok:
        check = {
            "ok": False,
            "message": "CRIU %s is older than the required %s" % (version, module.params["min_version"]),
            "detail": check.get("detail", ""),
        }
    backends = []
    if shutil.which("iptables-restore") or os.path.exists("/usr/sbin/iptables-restore"):
        backends.append("iptables")
    if features.get("network_lock_nftables", {}).get("supported"):
        backends.append("nftables")
    facts.update(
        installed=True,
        path=binary,
        version=version,
        version_ok=version_ok,
        check=check,
        features=features,
        network_lock_backends=backends,
    )
    # TCP repair is part of the default `criu check`.
    facts["features"]["tcp_repair"] = {"supported": bool(check["ok"]), "message": "part of criu check"}
    facts["strategies"] = node_strategies(facts)
    return facts


def main() -> None:
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    runner = CommandRunner(module)
    try:
        facts = gather(module, runner)
    except PodmigError as err:
        module.fail_json(**err.to_result())
    module.exit_json(changed=False, ansible_facts={"podmig_criu": facts}, commands=runner.commands)


if __name__ == "__main__":
    main()
