# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the target side's pure parts (module_utils/migration/landing.py)."""

from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.migration.landing import (
    ABORT,
    READY,
    overlay_options,
    restore_params,
    wait_ready,
)

# --------------------------------------------------------------------------- wait_ready


def test_ready_already_there_returns_at_once(tmp_path):
    (tmp_path / READY).write_text("1700000000.1\n")
    before = time.time()
    seen = wait_ready(str(tmp_path), timeout=5)
    assert before <= seen <= time.time()
    assert time.time() - before < 1


def test_ready_arriving_later_is_seen(tmp_path):
    timer = threading.Timer(0.05, (tmp_path / READY).write_text, args=("x",))
    timer.start()
    try:
        start = time.time()
        seen = wait_ready(str(tmp_path), timeout=5)
    finally:
        timer.cancel()
    assert seen - start >= 0.04
    assert seen - start < 2


def test_ready_wins_over_abort(tmp_path):
    (tmp_path / READY).write_text("x")
    (tmp_path / ABORT).write_text("x")
    assert wait_ready(str(tmp_path), timeout=1) > 0


def test_abort_ends_the_wait(tmp_path):
    (tmp_path / ABORT).write_text("x")
    start = time.monotonic()
    with pytest.raises(PodmigError, match="aborted before the source was ready") as info:
        wait_ready(str(tmp_path), timeout=5)
    assert info.value.details == {"aborted": True}
    assert time.monotonic() - start < 1


def test_abort_arriving_later_ends_the_wait(tmp_path):
    timer = threading.Timer(0.05, (tmp_path / ABORT).write_text, args=("x",))
    timer.start()
    try:
        with pytest.raises(PodmigError) as info:
            wait_ready(str(tmp_path), timeout=5)
    finally:
        timer.cancel()
    assert info.value.details.get("aborted") is True


def test_timeout(tmp_path):
    start = time.monotonic()
    with pytest.raises(PodmigError, match="no READY from the source") as info:
        wait_ready(str(tmp_path), timeout=0.1)
    elapsed = time.monotonic() - start
    assert 0.1 <= elapsed < 2
    assert info.value.details == {"timed_out": True}
    assert str(tmp_path / READY) in info.value.msg


def test_missing_signal_dir_times_out(tmp_path):
    with pytest.raises(PodmigError) as info:
        wait_ready(str(tmp_path / "not-yet"), timeout=0.05)
    assert info.value.details.get("timed_out") is True


# --------------------------------------------------------------------------- overlay_options


def test_overlay_options_top_layer_first():
    assert overlay_options(["/l/top", "/l/base"], "/c/upper", "/c/work") == (
        "lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work"
    )


def test_overlay_options_single_layer():
    assert overlay_options(["/l/only"], "/u", "/w") == "lowerdir=/l/only,upperdir=/u,workdir=/w"


@pytest.mark.parametrize("bad", ["/l/a:b", "/l/a,b"])
def test_overlay_options_refuse_separators_in_layers(bad):
    with pytest.raises(PodmigError, match="contains ','") as info:
        overlay_options(["/l/fine", bad], "/u", "/w")
    assert repr(bad) in info.value.msg


@pytest.mark.parametrize("upper,work", [("/u,x", "/w"), ("/u", "/w,x")])
def test_overlay_options_refuse_commas_in_upper_and_work(upper, work):
    with pytest.raises(PodmigError, match="contains ','"):
        overlay_options(["/l"], upper, work)


# --------------------------------------------------------------------------- restore_params


def test_restore_params_passes_through():
    params = {
        "container": "web1", "runtime_root": "/run/runc", "runc_path": "/usr/bin/runc",
        "criu_path": "/usr/local/sbin/criu", "bundle": "/run/podmig/bundles/web1", "image_dir": "/img",
        "work_dir": "/img.work", "lazy": True, "page_server": "10.0.0.1:27000", "cgroups_path": "/podmig/web1",
        "tcp_established": True, "file_locks": True, "ext_unix_sk": True, "manage_cgroups_mode": "full",
        "signal_dir": "/sig", "wait_timeout": 3, "restore_timeout": 45,
    }
    result = restore_params(params)
    assert result == {
        "container": "web1", "runtime_root": "/run/runc", "runc_path": "/usr/bin/runc",
        "criu_path": "/usr/local/sbin/criu", "bundle": "/run/podmig/bundles/web1", "image_dir": "/img",
        "work_dir": "/img.work", "lazy": True, "page_server": "10.0.0.1:27000", "cgroups_path": "/podmig/web1",
        "lazy_socket_timeout": 30, "restore_timeout": 45, "tcp_established": True, "file_locks": True, "ext_unix_sk": True,
        "manage_cgroups_mode": "full",
    }


def test_restore_params_defaults():
    result = restore_params({"container": "c", "runtime_root": "/r", "bundle": "/b", "image_dir": "/i"})
    assert result["lazy"] is False
    assert result["restore_timeout"] == 300
    assert result["page_server"] is None
    assert result["work_dir"] is None
    assert result["cgroups_path"] is None
    assert result["tcp_established"] is False
    assert result["file_locks"] is False
    assert result["ext_unix_sk"] is False
    assert result["manage_cgroups_mode"] is None


def test_restore_params_need_the_bundle():
    with pytest.raises(KeyError):
        restore_params({"container": "c", "runtime_root": "/r", "image_dir": "/i"})


def test_restore_params_carry_every_criu_option():
    from ansible_collections.podmig.live.plugins.module_utils.args_common import CRIU_OPTION_ARGS, criu_options

    options = criu_options(restore_params({"container": "c", "runtime_root": "/r", "bundle": "/b", "image_dir": "/i",
                                           "ext_unix_sk": True}))
    assert set(options) == set(CRIU_OPTION_ARGS)
    assert options["ext_unix_sk"] is True
