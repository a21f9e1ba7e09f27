# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the final checkpoint's parameters per strategy (module_utils/migration/handoff.py)."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from ansible_collections.podmig.live.plugins.module_utils.checkpoint import validate_params
from ansible_collections.podmig.live.plugins.module_utils.migration.handoff import FINAL_MODE, Sender, checkpoint_params
from ansible_collections.podmig.live.plugins.module_utils.strategy import STRATEGIES


def params(strategy, **overrides):
    base = {
        "strategy": strategy,
        "container": "web1",
        "runtime_root": "/run/runc",
        "runc_path": "/usr/bin/runc",
        "criu_path": "/usr/local/sbin/criu",
        "image_dir": "/var/lib/podmig/web1/final",
        "parent_dir": "/var/lib/podmig/web1/round2",
        "page_server": "0.0.0.0:27000",
    }
    base.update(overrides)
    return base


def test_final_mode_covers_every_strategy():
    assert set(FINAL_MODE) == set(STRATEGIES)
    assert FINAL_MODE == {"cold": "dump", "delta": "dump", "precopy": "dump", "postcopy": "lazy"}


@pytest.mark.parametrize("strategy", ["cold", "delta", "precopy"])
def test_dump_strategies_hold_frozen_without_page_server(strategy):
    result = checkpoint_params(params(strategy))
    assert result["mode"] == "dump"
    assert result["hold_frozen"] is True
    assert result["leave_running"] is False
    assert result["page_server"] is None
    assert result["force"] is True
    assert result["work_dir"] is None


def test_only_precopy_keeps_the_parent_dir():
    assert checkpoint_params(params("precopy"))["parent_dir"] == "/var/lib/podmig/web1/round2"
    assert checkpoint_params(params("cold"))["parent_dir"] is None
    assert checkpoint_params(params("delta"))["parent_dir"] is None
    assert checkpoint_params(params("postcopy"))["parent_dir"] is None


def test_postcopy_is_lazy_with_page_server_and_not_held_frozen():
    result = checkpoint_params(params("postcopy"))
    assert result["mode"] == "lazy"
    assert result["page_server"] == "0.0.0.0:27000"
    assert result["hold_frozen"] is False
    assert result["leave_running"] is False
    assert result["lazy_ready_timeout"] == 120


def test_passes_through_node_and_criu_options():
    result = checkpoint_params(params("cold", tcp_established=True, file_locks=True, ext_unix_sk=True,
                                      manage_cgroups_mode="soft"))
    assert result["container"] == "web1"
    assert result["runtime_root"] == "/run/runc"
    assert result["runc_path"] == "/usr/bin/runc"
    assert result["criu_path"] == "/usr/local/sbin/criu"
    assert result["image_dir"] == "/var/lib/podmig/web1/final"
    assert result["tcp_established"] is True
    assert result["file_locks"] is True
    assert result["ext_unix_sk"] is True
    assert result["manage_cgroups_mode"] == "soft"


def test_criu_options_default_off():
    result = checkpoint_params({"strategy": "cold", "container": "c", "runtime_root": "/r", "image_dir": "/i"})
    assert result["tcp_established"] is False
    assert result["file_locks"] is False
    assert result["ext_unix_sk"] is False
    assert result["manage_cgroups_mode"] is None
    assert result["runc_path"] is None


def test_unknown_strategy_raises():
    with pytest.raises(KeyError):
        checkpoint_params(params("auto"))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_params_pass_the_checkpoint_validation(strategy):
    # validate_params refuses e.g. hold_frozen with a lazy dump; what handoff builds must pass it
    validate_params(checkpoint_params(params(strategy, parent_dir=None)))


def test_params_carry_every_criu_option():
    from ansible_collections.podmig.live.plugins.module_utils.args_common import CRIU_OPTION_ARGS, criu_options

    options = criu_options(checkpoint_params(params("delta", file_locks=True)))
    assert set(options) == set(CRIU_OPTION_ARGS)
    assert options["file_locks"] is True


class RecordingRunner:
    def __init__(self):
        self.argv = []

    def run(self, argv, what, **kwargs):
        self.argv.append(argv)
        return 0, "", ""


class BinModule:
    def get_bin_path(self, name, **kwargs):
        return "/usr/bin/" + name


def test_ready_names_the_shell_pod_and_appears_at_once(tmp_path):
    """The remote command Sender.signal sends, run here by sh: READY holds the time and the pod line,
    is private, and no temporary file is left (odd characters in the lines stay literal)."""
    runner = RecordingRunner()
    sender = Sender(BinModule(), runner, {"dest_host": "10.0.0.2"})
    try:
        dest = tmp_path / "mig 1" / "app"
        sender.signal(str(dest), ("pod=default/app-mig-1/0b8f-uid", "note=$(id) {x} 'q'"))
    finally:
        sender.close()
    argv = runner.argv[-1]
    assert argv[-2] == "root@10.0.0.2" and argv[0].endswith("ssh")
    subprocess.run(["sh", "-c", argv[-1]], check=True)
    lines = (dest / "READY").read_text().splitlines()
    assert float(lines[0]) > 0
    assert lines[1:] == ["pod=default/app-mig-1/0b8f-uid", "note=$(id) {x} 'q'"]
    assert stat.S_IMODE(os.stat(dest / "READY").st_mode) == 0o600
    assert sorted(os.listdir(dest)) == ["READY"]
