# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of container_checkpoint's parameter checks (no node needed)."""

from __future__ import annotations

import pytest

from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.modules.container_checkpoint import argspec
from ansible_collections.podmig.live.plugins.module_utils.checkpoint import validate_params


def params(**overrides):
    base = {"mode": "dump", "hold_frozen": False, "leave_running": False, "page_server": None, "parent_dir": None}
    base.update(overrides)
    return base


@pytest.fixture
def parent(tmp_path):
    directory = tmp_path / "round1"
    directory.mkdir()
    (directory / "inventory.img").write_bytes(b"\x00")
    return str(directory)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"mode": "predump"},
        {"hold_frozen": True},
        {"leave_running": True},
        {"mode": "lazy", "page_server": "0.0.0.0:27000"},
        {"mode": "lazy", "page_server": "[fd00::1]:27000"},
        {"mode": "dump", "page_server": "10.0.0.1:1"},
        {"mode": "dump", "page_server": "h:65535"},
    ],
)
def test_valid_combinations(overrides):
    assert validate_params(params(**overrides)) is None


def test_valid_parent_with_dump(parent):
    validate_params(params(mode="predump", parent_dir=parent))
    validate_params(params(mode="dump", parent_dir=parent, hold_frozen=True))


def test_hold_frozen_only_for_dump_or_lazy():
    with pytest.raises(PodmigError, match="hold_frozen applies to mode=dump or lazy only \\(a predump leaves"):
        validate_params(params(mode="predump", hold_frozen=True))
    # a pod's source: paused, lazily dumped, frozen again after the last page (kubelet sees RUNNING)
    validate_params(params(mode="lazy", hold_frozen=True, page_server="h:1"))


@pytest.mark.parametrize("mode", ["predump", "lazy"])
def test_leave_running_only_for_dump(mode):
    with pytest.raises(PodmigError, match="leave_running applies to mode=dump only"):
        validate_params(params(mode=mode, leave_running=True, page_server="h:1"))


def test_hold_frozen_and_leave_running_exclusive():
    with pytest.raises(PodmigError, match="either leave_running .* or hold_frozen"):
        validate_params(params(hold_frozen=True, leave_running=True))


@pytest.mark.parametrize("page_server", [None, ""])
def test_lazy_needs_page_server(page_server):
    with pytest.raises(PodmigError, match="mode=lazy needs page_server"):
        validate_params(params(mode="lazy", page_server=page_server))


@pytest.mark.parametrize("page_server", ["27000", ":27000", "host:", "host:0", "host:65536", "host:http",
                                         "host:-1", "host:27000 "])
def test_bad_page_server(page_server):
    with pytest.raises(PodmigError, match="page_server must be ADDRESS:PORT, got %r" % page_server):
        validate_params(params(mode="lazy", page_server=page_server))


def test_lazy_refuses_parent(parent):
    with pytest.raises(PodmigError, match="lazy dump cannot have a parent_dir"):
        validate_params(params(mode="lazy", page_server="h:1", parent_dir=parent))


def test_parent_without_inventory(tmp_path):
    with pytest.raises(PodmigError, match="parent_dir %s holds no completed checkpoint" % tmp_path):
        validate_params(params(mode="predump", parent_dir=str(tmp_path)))


def test_parent_missing(tmp_path):
    with pytest.raises(PodmigError, match="no inventory.img"):
        validate_params(params(parent_dir=str(tmp_path / "nope")))


def test_argspec_modes_and_cgroup_choices():
    spec = argspec()
    assert spec["mode"]["choices"] == ["predump", "dump", "lazy"]
    assert spec["mode"]["default"] == "dump"
    assert spec["container"]["required"] is True
    assert spec["image_dir"]["required"] is True
    assert spec["manage_cgroups_mode"]["choices"] == ["soft", "full", "strict", "ignore"]
    # every key validate_params reads is in the spec
    for key in ("mode", "hold_frozen", "leave_running", "page_server", "parent_dir"):
        assert key in spec
