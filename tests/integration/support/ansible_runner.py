# -*- coding: utf-8 -*-
"""Run podmig.live modules and playbooks through the real ansible CLI and read their JSON results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
COLLECTIONS = os.path.join(REPO, ".build", "collections")
BIN = os.path.dirname(sys.executable)


def ensure_collection_link() -> None:
    """Ansible finds the collection at .build/collections/ansible_collections/podmig/live (a link to the repo)."""
    parent = os.path.join(COLLECTIONS, "ansible_collections", "podmig")
    os.makedirs(parent, exist_ok=True)
    link = os.path.join(parent, "live")
    if os.path.realpath(link) != REPO:
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(REPO, link)


def ansible_env() -> dict:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
        ANSIBLE_HOST_KEY_CHECKING="True",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        ANSIBLE_PYTHON_INTERPRETER="auto_silent",
    )
    return env


class Result(dict):
    """A module result; ``failed`` and ``msg`` as Ansible reports them."""

    @property
    def failed(self) -> bool:
        return bool(self.get("failed")) or self.get("rc_ansible", 0) != 0

    @property
    def msg(self) -> str:
        return str(self.get("msg", ""))


def run_module(module: str, args: dict, host: str = "localhost", inventory: str | None = None,
               check: bool = False, timeout: int = 300) -> Result:
    """`ansible HOST -m podmig.live.MODULE -a JSON`; returns the module's JSON result."""
    ensure_collection_link()
    with tempfile.TemporaryDirectory(prefix="podmig-tree-") as tree:
        argv = [os.path.join(BIN, "ansible"), host, "-m", module if "." in module else "podmig.live." + module,
                "-t", tree]
        if args:
            argv += ["-a", json.dumps(args)]
        if inventory:
            argv += ["-i", inventory]
        else:
            argv += ["-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable]
        if check:
            argv.append("--check")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=ansible_env(), check=False)
        path = os.path.join(tree, host)
        if not os.path.exists(path):
            raise AssertionError("ansible wrote no result for %s (rc=%d)\n%s\n%s" % (host, proc.returncode,
                                                                                   proc.stdout, proc.stderr))
        with open(path, encoding="utf-8") as handle:
            result = Result(json.load(handle))
    result["rc_ansible"] = proc.returncode
    result["ansible_output"] = proc.stdout[-4000:] + proc.stderr[-4000:]
    return result


def playbook_argv(playbook: str, extra_vars: dict | None = None, inventory: str | list | None = None,
                  check: bool = False) -> list:
    ensure_collection_link()
    argv = [os.path.join(BIN, "ansible-playbook"), playbook]
    if inventory:
        for inv in [inventory] if isinstance(inventory, str) else inventory:
            argv += ["-i", inv]
    else:
        argv += ["-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if check:
        argv.append("--check")
    return argv


def run_playbook(playbook: str, extra_vars: dict | None = None, inventory: str | list | None = None,
                 check: bool = False, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(playbook_argv(playbook, extra_vars, inventory, check), capture_output=True, text=True,
                          timeout=timeout, env=ansible_env(), check=False)


class RunningPlaybook:
    """A playbook run in the background whose output can be waited on line by line (for fault tests)."""

    def __init__(self, playbook: str, extra_vars: dict | None = None, inventory: str | list | None = None) -> None:
        env = ansible_env()
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(playbook_argv(playbook, extra_vars, inventory), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list = []

    def wait_for_line(self, text: str, timeout: float = 300) -> str:
        import time

        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            self.lines.append(line)
            if text in line:
                return line
            if time.monotonic() > deadline:
                break
        raise AssertionError("the playbook never printed %r:\n%s" % (text, "".join(self.lines[-80:])))

    def finish(self, timeout: float = 600) -> tuple:
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines.append(out or "")
        return self.proc.returncode, "".join(self.lines)
