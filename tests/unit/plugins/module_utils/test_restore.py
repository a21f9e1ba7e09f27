# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of container_restore's pure helpers."""

from __future__ import annotations

import json

import pytest

from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError
from ansible_collections.podmig.live.plugins.module_utils.restore import mounts_under, set_cgroups_path, split_address


@pytest.mark.parametrize(
    "value, expected",
    [
        ("10.0.0.1:27000", ("10.0.0.1", 27000)),
        ("node1.example:1", ("node1.example", 1)),
        ("[fd00::1]:27000", ("fd00::1", 27000)),
        ("fd00::1:27000", ("fd00::1", 27000)),  # last colon is the port
        ("h:65535", ("h", 65535)),
    ],
)
def test_split_address(value, expected):
    assert split_address(value) == expected


@pytest.mark.parametrize("value", [None, "", "27000", ":27000", "h:", "h:0", "h:65536", "h:port", "[::1]"])
def test_split_address_refuses(value):
    with pytest.raises(PodmigError, match="page_server must be ADDRESS:PORT"):
        split_address(value)


def write_config(bundle, config):
    (bundle / "config.json").write_text(json.dumps(config))


def read_config(bundle):
    return json.loads((bundle / "config.json").read_text())


def test_set_cgroups_path_sets_and_keeps_the_rest(tmp_path):
    config = {"ociVersion": "1.0.2", "process": {"args": ["sleep", "inf"]},
              "linux": {"cgroupsPath": "/old", "namespaces": [{"type": "pid"}]}}
    write_config(tmp_path, config)
    assert set_cgroups_path(str(tmp_path), "system.slice:podmig:web") is True
    new = read_config(tmp_path)
    assert new["linux"]["cgroupsPath"] == "system.slice:podmig:web"
    assert new["linux"]["namespaces"] == [{"type": "pid"}]
    assert new["process"] == config["process"]
    assert new["ociVersion"] == "1.0.2"
    # no temporary file left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_set_cgroups_path_unchanged_returns_false(tmp_path):
    write_config(tmp_path, {"linux": {"cgroupsPath": "/podmig/web"}})
    before = (tmp_path / "config.json").read_text()
    assert set_cgroups_path(str(tmp_path), "/podmig/web") is False
    assert (tmp_path / "config.json").read_text() == before


def test_set_cgroups_path_creates_linux_section(tmp_path):
    write_config(tmp_path, {"ociVersion": "1.0.2"})
    assert set_cgroups_path(str(tmp_path), "/podmig/web") is True
    assert read_config(tmp_path) == {"ociVersion": "1.0.2", "linux": {"cgroupsPath": "/podmig/web"}}


def test_set_cgroups_path_missing_config(tmp_path):
    with pytest.raises(FileNotFoundError):
        set_cgroups_path(str(tmp_path), "/x")


# What CRIU killed mid-restore left mounted (seen on a test host): its cgroup yard in the work dir,
# runc's criu-root; plus mounts that must stay (a sibling with the same name prefix, the root).
MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
901 22 0:90 / /n/b/migrations/m1/restore-work/.criu.cgyard.2lxRDb rw,relatime - tmpfs none rw
902 901 0:30 / /n/b/migrations/m1/restore-work/.criu.cgyard.2lxRDb/pids rw,relatime - cgroup none rw,pids
903 901 0:31 / /n/b/migrations/m1/restore-work/.criu.cgyard.2lxRDb/freezer rw,relatime - cgroup none rw,freezer
904 22 0:91 / /n/b/runc/app/criu-root rw,relatime - tmpfs none rw
905 22 0:92 / /n/b/runc/app2/criu-root rw,relatime - tmpfs none rw
906 22 0:93 / /n/b/migrations/m1/restore-work-other rw,relatime - tmpfs none rw
"""


def test_mounts_under_finds_criu_leftovers_deepest_first_and_nothing_else():
    points = mounts_under(["/n/b/migrations/m1/restore-work/", "/n/b/runc/app"], MOUNTINFO)
    assert points == [
        "/n/b/migrations/m1/restore-work/.criu.cgyard.2lxRDb/freezer",
        "/n/b/migrations/m1/restore-work/.criu.cgyard.2lxRDb/pids",
        "/n/b/migrations/m1/restore-work/.criu.cgyard.2lxRDb",
        "/n/b/runc/app/criu-root",
    ]


def test_mounts_under_nothing_there():
    assert mounts_under(["/elsewhere"], MOUNTINFO) == []
    assert mounts_under([""], MOUNTINFO) == []
