# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the /proc/<pid>/mountinfo and overlay option parser."""

from __future__ import annotations

import pytest

from ansible_collections.podmig.live.plugins.module_utils import mountinfo as mi

SNAP = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"
ROOTFS = "/run/containerd/io.containerd.runtime.v2.task/k8s.io/0f1e2d/rootfs"

MOUNTINFO = "\n".join([
    "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro",
    "23 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=4008420k,nr_inodes=1002105,mode=755",
    "25 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw",
    "90 22 0:45 / /mnt/usb\\040stick rw,relatime shared:40 master:7 - vfat /dev/sdb1 rw,fmask=0022",
    # the shim's rootfs overlay, no optional fields
    "1234 29 0:345 / %s rw,relatime - overlay overlay rw,lowerdir=%s/12/fs:%s/11/fs,upperdir=%s/13/fs,"
    "workdir=%s/13/work" % (ROOTFS, SNAP, SNAP, SNAP, SNAP),
    # a second mount stacked on the same point (the topmost is listed last)
    "1240 1234 0:350 / %s rw,relatime - overlay overlay rw,lowerdir=/l/top:/l/bottom,upperdir=/u2,workdir=/w2"
    % ROOTFS,
    "",
])


@pytest.fixture
def mounts():
    return mi.parse(MOUNTINFO)


# --------------------------------------------------------------------------- escapes and options


@pytest.mark.parametrize(
    "text, expected",
    [
        ("/mnt/my\\040disk", "/mnt/my disk"),
        ("a\\054b", "a,b"),
        ("tab\\011x", "tab\tx"),
        ("back\\134slash", "back\\slash"),
        ("no escapes", "no escapes"),
        ("\\04", "\\04"),  # not a full octal escape
    ],
)
def test_unescape(text, expected):
    assert mi.unescape(text) == expected


def test_split_options_keeps_escaped_commas():
    assert mi.split_options("rw,upperdir=/a\\,b,workdir=/w") == ["rw", "upperdir=/a\\,b", "workdir=/w"]


def test_split_options_drops_empty_parts():
    assert mi.split_options(",rw,,ro,") == ["rw", "ro"]
    assert mi.split_options("") == []


# --------------------------------------------------------------------------- parse_line


def test_parse_line_with_optional_field():
    mount = mi.parse_line("25 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw")
    assert mount == {
        "mount_id": 25,
        "parent_id": 22,
        "major": 0,
        "minor": 22,
        "root": "/",
        "mount_point": "/proc",
        "mount_options": ["rw", "nosuid", "nodev", "noexec", "relatime"],
        "optional": ["shared:13"],
        "fstype": "proc",
        "source": "proc",
        "super_options": "rw",
    }


def test_parse_line_without_optional_fields(mounts):
    overlay = mounts[4]
    assert overlay["optional"] == []
    assert overlay["fstype"] == "overlay"
    assert overlay["mount_point"] == ROOTFS
    assert overlay["super_options"].startswith("rw,lowerdir=")
    assert (overlay["major"], overlay["minor"]) == (0, 345)


def test_parse_line_several_optional_fields_and_escaped_mount_point(mounts):
    usb = mounts[3]
    assert usb["optional"] == ["shared:40", "master:7"]
    assert usb["mount_point"] == "/mnt/usb stick"
    assert usb["fstype"] == "vfat"
    assert usb["source"] == "/dev/sdb1"


def test_parse_line_bind_mount_root_and_escaped_source():
    line = "300 22 259:2 /srv/data\\040dir /data rw,relatime shared:1 - ext4 /dev/disk\\040x rw"
    mount = mi.parse_line(line)
    assert mount["root"] == "/srv/data dir"
    assert mount["mount_point"] == "/data"
    assert mount["source"] == "/dev/disk x"


def test_parse_line_missing_source_and_super_options():
    mount = mi.parse_line("1 0 0:1 / / rw - rootfs")
    assert mount["fstype"] == "rootfs"
    assert mount["source"] == ""
    assert mount["super_options"] == ""


def test_parse_line_malformed():
    with pytest.raises(ValueError, match="malformed mountinfo line"):
        mi.parse_line("25 22 0:22 / /proc rw shared:13 proc proc rw")


def test_parse_skips_blank_lines(mounts):
    assert [m["mount_id"] for m in mounts] == [22, 23, 25, 90, 1234, 1240]


# --------------------------------------------------------------------------- overlay_layers


def test_overlay_layers_containerd_rootfs(mounts):
    layers = mi.overlay_layers(mounts[4]["super_options"])
    assert layers == {
        "upperdir": SNAP + "/13/fs",
        "workdir": SNAP + "/13/work",
        "lowerdirs": [SNAP + "/12/fs", SNAP + "/11/fs"],  # top first, as given
        "userxattr": False,
    }


def test_overlay_layers_escaped_space_and_comma():
    opts = "rw,lowerdir=/l/with\\040space:/l/b,upperdir=/u/a\\054b,workdir=/w/x\\040y,userxattr"
    layers = mi.overlay_layers(opts)
    assert layers["upperdir"] == "/u/a,b"
    assert layers["workdir"] == "/w/x y"
    assert layers["lowerdirs"] == ["/l/with space", "/l/b"]
    assert layers["userxattr"] is True


def test_overlay_layers_backslash_escaped_colon_in_lowerdir():
    # mount -o lowerdir=/l/a\:b:/l/c ; the kernel shows the backslash as \134.
    layers = mi.overlay_layers("rw,lowerdir=/l/a\\134:b:/l/c,upperdir=/u,workdir=/w")
    assert layers["lowerdirs"] == ["/l/a:b", "/l/c"]


def test_overlay_layers_lowerdir_plus_options():
    opts = "rw,lowerdir+=/l/top,lowerdir+=/l/mid\\040x,lowerdir+=/l/bottom,upperdir=/u,workdir=/w"
    layers = mi.overlay_layers(opts)
    assert layers["lowerdirs"] == ["/l/top", "/l/mid x", "/l/bottom"]
    assert layers["upperdir"] == "/u"


def test_overlay_layers_read_only_overlay():
    layers = mi.overlay_layers("ro,lowerdir=/a:/b:/c")
    assert layers == {"upperdir": None, "workdir": None, "lowerdirs": ["/a", "/b", "/c"], "userxattr": False}


def test_overlay_layers_ignores_other_options():
    layers = mi.overlay_layers("rw,relatime,index=off,metacopy=off,redirect_dir=on,upperdir=/u,workdir=/w")
    assert layers == {"upperdir": "/u", "workdir": "/w", "lowerdirs": [], "userxattr": False}


# --------------------------------------------------------------------------- find_mount


def test_find_mount_picks_the_last(mounts):
    mount = mi.find_mount(mounts, ROOTFS)
    assert mount["mount_id"] == 1240
    assert mi.overlay_layers(mount["super_options"])["upperdir"] == "/u2"


def test_find_mount_unescaped_path(mounts):
    assert mi.find_mount(mounts, "/mnt/usb stick")["mount_id"] == 90
    assert mi.find_mount(mounts, "/mnt/usb\\040stick") is None


def test_find_mount_none(mounts):
    assert mi.find_mount(mounts, "/nowhere") is None
    assert mi.find_mount([], "/") is None
