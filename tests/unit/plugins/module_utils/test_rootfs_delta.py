# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the upper-dir manifest, capture and apply (plain directories, no mounts)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import time

import pytest

from ansible_collections.podmig.live.plugins.module_utils import rootfs_delta as rd
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not IS_ROOT, reason="needs root: mknod, trusted.* xattrs and chown to other users")

# Fields that cannot match between two trees: inode numbers, ctime (set by the
# kernel), atime (reading moves it), and directory sizes (ext4 never shrinks them).
UNCOMPARABLE = ("ino", "ctime_ns", "atime_ns", "dirty", "racy")


# --------------------------------------------------------------------------- helpers


def comparable(manifest: dict) -> dict:
    out = {}
    for rel, entry in manifest.items():
        entry = {k: v for k, v in entry.items() if k not in UNCOMPARABLE}
        if entry["type"] == "dir":
            entry.pop("size")
        if entry["type"] == "whiteout":
            entry.pop("nlink")  # the kernel shares one inode among whiteouts
        out[rel] = entry
    return out


def contents(root) -> dict:
    found = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, str(root))
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    found[rel] = handle.read()
            elif stat.S_ISLNK(st.st_mode):
                found[rel] = "-> " + os.readlink(path)
            else:
                found[rel] = stat.S_IFMT(st.st_mode)
    return found


def assert_same_tree(src, dst) -> None:
    assert comparable(rd.scan(str(dst))) == comparable(rd.scan(str(src)))
    assert contents(dst) == contents(src)


def write(path, data: bytes | str = b"data", mode: int | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        os.chmod(path, mode)
    return path


def delta_json(delta_dir) -> dict:
    return json.loads((delta_dir / "delta.json").read_text())


def tick(path) -> None:
    """Make sure the next change of path gets a different mtime/ctime than the scan saw."""
    st = os.lstat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 1_000_000_000), follow_symlinks=False)


@pytest.fixture(autouse=True)
def no_racy_window(monkeypatch):
    """Tests change files and capture at once; the racy rule has its own test."""
    monkeypatch.setattr(rd, "RACY_WINDOW_NS", 0)


@pytest.fixture
def dirs(tmp_path):
    src, tgt = tmp_path / "upper", tmp_path / "target"
    src.mkdir()
    tgt.mkdir()
    return src, tgt, tmp_path


# --------------------------------------------------------------------------- round trips


def test_presync_change_final_round_trip(dirs):
    src, tgt, tmp = dirs
    write(src / "etc" / "app.conf", "port=1\n")
    write(src / "var" / "lib" / "db" / "data", b"\0" * 100000 + b"end")
    write(src / "var" / "log" / "old.log", "old\n")
    write(src / "tmp" / "scratch" / "a", "a")
    write(src / "keep", "unchanged", mode=0o640)
    d0, d1 = tmp / "d0", tmp / "d1"

    stats0 = rd.capture(str(src), str(d0))
    assert stats0["files"] == 5 and stats0["removed"] == 0 and stats0["bytes"] == 100003 + 7 + 4 + 1 + 9
    assert delta_json(d0)["previous"] is False
    assert stat.S_IMODE(os.stat(d0).st_mode) == 0o700
    assert (d0 / "tree" / "var" / "lib" / "db" / "data").read_bytes().endswith(b"end")

    # The container keeps running: content, new files, deletions, a dir turned into a file.
    write(src / "etc" / "app.conf", "port=2\n")
    write(src / "var" / "lib" / "db" / "new", "fresh")
    os.unlink(src / "var" / "log" / "old.log")
    shutil.rmtree(src / "tmp" / "scratch")
    write(src / "tmp" / "scratch", "now a file")
    os.rename(src / "var" / "lib" / "db" / "data", src / "var" / "lib" / "db" / "data.moved")

    stats1 = rd.capture(str(src), str(d1), rd.load_manifest(str(d0)))
    delta = delta_json(d1)
    assert delta["previous"] is True
    assert "keep" not in delta["changed"]
    assert {"etc/app.conf", "var/lib/db/new", "tmp/scratch", "var/lib/db/data.moved"} <= set(delta["changed"])
    assert set(delta["removed"]) == {"var/log/old.log", "tmp/scratch/a", "var/lib/db/data"}
    assert not (d1 / "tree" / "keep").exists()
    assert (d1 / "tree" / "etc" / "app.conf").read_text() == "port=2\n"
    assert stats1["removed"] == 3

    assert rd.apply(str(d0), str(tgt))["changed"] > 0
    assert rd.apply(str(d1), str(tgt))["changed"] > 0
    assert_same_tree(src, tgt)
    assert (tgt / "tmp" / "scratch").read_text() == "now a file"
    assert not (tgt / "var" / "log" / "old.log").exists()
    assert (tgt / "var" / "lib" / "db" / "data.moved").read_bytes()[-3:] == b"end"


def test_capture_without_changes_is_empty(dirs):
    src, _tgt, tmp = dirs
    write(src / "a" / "b", "x")
    os.symlink("a/b", src / "link")
    rd.capture(str(src), str(tmp / "d0"))
    stats = rd.capture(str(src), str(tmp / "d1"), rd.load_manifest(str(tmp / "d0")))
    assert stats["entries"] == 0 and stats["removed"] == 0 and stats["bytes"] == 0
    delta = delta_json(tmp / "d1")
    assert delta["changed"] == [] and delta["removed"] == [] and delta["hardlinks"] == {}
    assert os.listdir(tmp / "d1" / "tree") == []
    # The new manifest is complete: it is the previous of the next round.
    assert set(rd.load_manifest(str(tmp / "d1"))) == {".", "a", "a/b", "link"}


def test_idempotent_apply_and_check_mode(dirs):
    src, tgt, tmp = dirs
    write(src / "d" / "f", "content", mode=0o600)
    os.symlink("/nonexistent", src / "dangling")
    os.link(src / "d" / "f", src / "f-link")
    rd.capture(str(src), str(tmp / "d0"))

    predicted = rd.apply(str(tmp / "d0"), str(tgt), check_mode=True)
    assert os.listdir(tgt) == []  # check mode wrote nothing
    first = rd.apply(str(tmp / "d0"), str(tgt))
    assert predicted == first
    assert first["changed"] == 5  # ".", d, d/f, dangling, f-link
    assert rd.apply(str(tmp / "d0"), str(tgt))["changed"] == 0
    assert rd.apply(str(tmp / "d0"), str(tgt), check_mode=True)["changed"] == 0
    assert_same_tree(src, tgt)

    # Drift in the target is repaired by the next apply, and only the drifted entries count.
    os.chmod(tgt / "d" / "f", 0o644)
    (tgt / "dangling").unlink()
    stats = rd.apply(str(tmp / "d0"), str(tgt))
    assert stats["files"] == 1 and stats["symlinks"] == 1 and stats["bytes"] == 0
    assert_same_tree(src, tgt)


def test_same_size_content_change_is_rewritten(dirs):
    src, tgt, tmp = dirs
    f = write(src / "f", "aaaa")
    rd.capture(str(src), str(tmp / "d0"))
    rd.apply(str(tmp / "d0"), str(tgt))
    (tgt / "f").write_text("bbbb")  # same size, other content
    os.utime(tgt / "f", ns=(os.stat(f).st_atime_ns, os.stat(f).st_mtime_ns))
    stats = rd.apply(str(tmp / "d0"), str(tgt))
    assert stats["files"] == 1 and stats["bytes"] == 4
    assert (tgt / "f").read_text() == "aaaa"


def test_sparse_file_stays_sparse(dirs):
    src, tgt, tmp = dirs
    path = src / "sparse"
    with open(path, "wb") as handle:
        handle.truncate(64 * 1024 * 1024)
        handle.seek(32 * 1024 * 1024)
        handle.write(b"middle")
    rd.capture(str(src), str(tmp / "d0"))
    rd.apply(str(tmp / "d0"), str(tgt))
    for copy in (tmp / "d0" / "tree" / "sparse", tgt / "sparse"):
        st = os.stat(copy)
        assert st.st_size == 64 * 1024 * 1024
        assert st.st_blocks * 512 < 1024 * 1024, "holes were filled in %s" % copy
    assert_same_tree(src, tgt)


def test_non_utf8_names(dirs):
    src, tgt, tmp = dirs
    name = os.fsdecode(b"caf\xe9-\xff")
    write(src / name, "latin-1 name")
    os.symlink(os.fsdecode(b"\xfe-target"), src / "sym")
    rd.capture(str(src), str(tmp / "d0"))
    rd.apply(str(tmp / "d0"), str(tgt))
    assert os.fsencode(name) in os.listdir(os.fsencode(str(tgt)))
    assert os.readlink(os.fsencode(str(tgt / "sym"))) == b"\xfe-target"
    assert_same_tree(src, tgt)


# --------------------------------------------------------------------------- overlay specifics


@needs_root
def test_whiteouts(dirs):
    src, tgt, tmp = dirs
    os.mknod(src / "deleted-from-lower", stat.S_IFCHR, os.makedev(0, 0))
    (src / "etc").mkdir()
    # Like the kernel, share one inode among whiteouts.
    os.link(src / "deleted-from-lower", src / "etc" / "also-deleted")
    manifest = rd.scan(str(src))
    assert manifest["deleted-from-lower"]["type"] == "whiteout"
    assert manifest["etc/also-deleted"]["nlink"] == 2

    stats = rd.capture(str(src), str(tmp / "d0"))
    assert stats["whiteouts"] == 2 and stats["hardlinks"] == 0 and stats["devices"] == 0
    assert delta_json(tmp / "d0")["hardlinks"] == {}
    tree_st = os.lstat(tmp / "d0" / "tree" / "deleted-from-lower")
    assert stat.S_ISCHR(tree_st.st_mode) and tree_st.st_rdev == 0
    rd.apply(str(tmp / "d0"), str(tgt))
    for rel in ("deleted-from-lower", "etc/also-deleted"):
        st = os.lstat(tgt / rel)
        assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0
    assert_same_tree(src, tgt)

    # Another whiteout bumps the shared inode's ctime: the old ones are not sent again.
    tick(src / "etc")
    os.link(src / "deleted-from-lower", src / "etc" / "third")
    rd.capture(str(src), str(tmp / "d1"), rd.load_manifest(str(tmp / "d0")))
    assert set(delta_json(tmp / "d1")["changed"]) == {"etc", "etc/third"}


@needs_root
def test_opaque_dirs_and_overlay_xattrs(dirs):
    src, tgt, tmp = dirs
    (src / "recreated").mkdir()
    write(src / "recreated" / "new", "n")
    os.setxattr(src / "recreated", "trusted.overlay.opaque", b"y")
    (src / "userns").mkdir()
    os.setxattr(src / "userns", "user.overlay.opaque", b"y")
    (src / "moved").mkdir()
    os.setxattr(src / "moved", "trusted.overlay.redirect", b"/old/place")
    write(src / "copied-up", "c")
    os.setxattr(src / "copied-up", "trusted.overlay.metacopy", b"")
    os.setxattr(src / "copied-up", "trusted.overlay.origin", b"\x00\xfb\x1d\x01")
    os.setxattr(src, "trusted.overlay.impure", b"y")

    manifest = rd.scan(str(src))
    assert rd.is_opaque(manifest["recreated"]) and rd.is_opaque(manifest["userns"])
    assert not rd.is_opaque(manifest["moved"])
    assert "trusted.overlay.impure" in manifest["."]["xattrs"]
    stats = rd.capture(str(src), str(tmp / "d0"))
    assert stats["opaque_dirs"] == 2 and stats["dirs"] == 4
    assert os.getxattr(tmp / "d0" / "tree" / "recreated", "trusted.overlay.opaque") == b"y"
    rd.apply(str(tmp / "d0"), str(tgt))
    assert os.getxattr(tgt / "recreated", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(tgt / "userns", "user.overlay.opaque") == b"y"
    assert os.getxattr(tgt / "moved", "trusted.overlay.redirect") == b"/old/place"
    assert os.getxattr(tgt / "copied-up", "trusted.overlay.origin") == b"\x00\xfb\x1d\x01"
    assert os.getxattr(tgt, "trusted.overlay.impure") == b"y"
    assert_same_tree(src, tgt)


def test_symlinks_are_not_followed(dirs):
    src, tgt, tmp = dirs
    outside = tmp / "outside"
    write(outside / "secret", "host file")
    os.symlink(str(outside), src / "to-host-dir")
    os.symlink(str(outside / "secret"), src / "to-host-file")
    os.symlink("../../etc/shadow", src / "relative")
    os.symlink("missing", src / "dangling")
    (src / "real").mkdir()
    os.symlink("../real", src / "real" / "loop")
    if IS_ROOT:
        os.setxattr(src / "relative", "trusted.overlay.origin", b"\x01", follow_symlinks=False)

    manifest = rd.scan(str(src))
    assert not any(rel.startswith("to-host-dir/") for rel in manifest)
    assert manifest["to-host-file"] == {**manifest["to-host-file"], "type": "symlink", "target": str(outside / "secret")}
    stats = rd.capture(str(src), str(tmp / "d0"))
    assert stats["symlinks"] == 5 and stats["files"] == 0 and stats["bytes"] == 0
    rd.apply(str(tmp / "d0"), str(tgt))
    assert os.readlink(tgt / "to-host-dir") == str(outside)
    assert os.readlink(tgt / "relative") == "../../etc/shadow"
    if IS_ROOT:
        assert os.getxattr(tgt / "relative", "trusted.overlay.origin", follow_symlinks=False) == b"\x01"
    assert contents(outside) == {"secret": b"host file"}
    assert_same_tree(src, tgt)

    # A file replaced by a symlink, and back.
    write(src / "real" / "f", "file")
    rd.capture(str(src), str(tmp / "d1"), rd.load_manifest(str(tmp / "d0")))
    rd.apply(str(tmp / "d1"), str(tgt))
    os.unlink(src / "real" / "f")
    os.symlink("loop", src / "real" / "f")
    rd.capture(str(src), str(tmp / "d2"), rd.load_manifest(str(tmp / "d1")))
    rd.apply(str(tmp / "d2"), str(tgt))
    assert os.readlink(tgt / "real" / "f") == "loop"
    assert_same_tree(src, tgt)


def test_hard_links(dirs):
    src, tgt, tmp = dirs
    first = write(src / "a" / "data", "shared")
    os.link(first, src / "b-link")
    (src / "z").mkdir()
    os.link(first, src / "z" / "link")
    write(src / "single", "s")

    stats = rd.capture(str(src), str(tmp / "d0"))
    assert stats["files"] == 2 and stats["hardlinks"] == 2 and stats["bytes"] == 7
    assert delta_json(tmp / "d0")["hardlinks"] == {"b-link": "a/data", "z/link": "a/data"}
    tree = tmp / "d0" / "tree"
    assert os.stat(tree / "a" / "data").st_ino == os.stat(tree / "b-link").st_ino == os.stat(tree / "z" / "link").st_ino
    rd.apply(str(tmp / "d0"), str(tgt))
    inos = {os.stat(tgt / rel).st_ino for rel in ("a/data", "b-link", "z/link")}
    assert len(inos) == 1 and os.stat(tgt / "a" / "data").st_nlink == 3
    assert_same_tree(src, tgt)
    assert rd.apply(str(tmp / "d0"), str(tgt))["changed"] == 0

    # Break one link (new inode), add another: the final delta re-links correctly.
    os.unlink(src / "b-link")
    write(src / "b-link", "own content")
    os.link(src / "single", src / "z" / "single-link")
    rd.capture(str(src), str(tmp / "d1"), rd.load_manifest(str(tmp / "d0")))
    # Unlinking b-link moved the shared inode's ctime: its other names are sent again.
    assert delta_json(tmp / "d1")["hardlinks"] == {"z/link": "a/data", "z/single-link": "single"}
    rd.apply(str(tmp / "d1"), str(tgt))
    assert os.stat(tgt / "b-link").st_ino != os.stat(tgt / "a" / "data").st_ino
    assert os.stat(tgt / "z" / "single-link").st_ino == os.stat(tgt / "single").st_ino
    assert (tgt / "z" / "link").read_text() == "shared"
    assert_same_tree(src, tgt)
    assert rd.apply(str(tmp / "d1"), str(tgt))["changed"] == 0


@needs_root
def test_device_nodes(dirs):
    src, tgt, tmp = dirs
    (src / "dev").mkdir()
    os.mknod(src / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(src / "dev" / "loop9", stat.S_IFBLK | 0o660, os.makedev(7, 9))
    os.chmod(src / "dev" / "loop9", 0o660)  # no umask
    os.chown(src / "dev" / "loop9", 0, 6)
    stats = rd.capture(str(src), str(tmp / "d0"))
    assert stats["devices"] == 2 and stats["whiteouts"] == 0
    rd.apply(str(tmp / "d0"), str(tgt))
    null, loop = os.lstat(tgt / "dev" / "null"), os.lstat(tgt / "dev" / "loop9")
    assert stat.S_ISCHR(null.st_mode) and (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_ISBLK(loop.st_mode) and (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 9)
    assert loop.st_gid == 6 and stat.S_IMODE(loop.st_mode) == 0o660
    assert_same_tree(src, tgt)

    # Same path, other device number: replaced.
    os.unlink(src / "dev" / "null")
    os.mknod(src / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    rd.capture(str(src), str(tmp / "d1"), rd.load_manifest(str(tmp / "d0")))
    assert rd.apply(str(tmp / "d1"), str(tgt))["devices"] == 1
    assert os.minor(os.lstat(tgt / "dev" / "null").st_rdev) == 5
    assert_same_tree(src, tgt)


def test_fifo_and_socket(dirs):
    src, tgt, tmp = dirs
    os.mkfifo(src / "pipe")
    os.chmod(src / "pipe", 0o620)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(src / "app.sock"))
        stats = rd.capture(str(src), str(tmp / "d0"))
    finally:
        sock.close()
    assert stats["fifos"] == 1 and stats["sockets_skipped"] == 1
    assert delta_json(tmp / "d0")["sockets_skipped"] == ["app.sock"]
    assert "app.sock" not in delta_json(tmp / "d0")["changed"]
    rd.apply(str(tmp / "d0"), str(tgt))  # would block forever if it opened the fifo
    st = os.lstat(tgt / "pipe")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620
    assert not os.path.lexists(tgt / "app.sock")


def test_removed_files_and_dirs(dirs):
    src, tgt, tmp = dirs
    write(src / "gone" / "deep" / "er" / "f", "x")
    write(src / "gone" / "g", "y")
    write(src / "stay" / "rm-me", "z")
    write(src / "stay" / "keep", "k")
    write(src / "dir-to-file" / "child", "c")
    write(src / "file-to-dir", "f")
    rd.capture(str(src), str(tmp / "d0"))
    rd.apply(str(tmp / "d0"), str(tgt))

    shutil.rmtree(src / "gone")
    os.unlink(src / "stay" / "rm-me")
    shutil.rmtree(src / "dir-to-file")
    write(src / "dir-to-file", "file now")
    os.unlink(src / "file-to-dir")
    write(src / "file-to-dir" / "inside", "dir now")
    stats = rd.capture(str(src), str(tmp / "d1"), rd.load_manifest(str(tmp / "d0")))
    # A removed directory stands for its children.
    assert delta_json(tmp / "d1")["removed"] == ["dir-to-file/child", "gone", "stay/rm-me"]
    assert stats["removed"] == 3

    predicted = rd.apply(str(tmp / "d1"), str(tgt), check_mode=True)
    assert (tgt / "gone" / "deep" / "er" / "f").exists()  # check mode removed nothing
    assert rd.apply(str(tmp / "d1"), str(tgt)) == predicted
    assert not (tgt / "gone").exists() and not (tgt / "stay" / "rm-me").exists()
    assert (tgt / "dir-to-file").read_text() == "file now"
    assert (tgt / "file-to-dir" / "inside").read_text() == "dir now"
    assert_same_tree(src, tgt)
    assert rd.apply(str(tmp / "d1"), str(tgt))["changed"] == 0


def test_attribute_only_changes(dirs):
    src, tgt, tmp = dirs
    f = write(src / "bin" / "tool", "#!/bin/sh\n", mode=0o755)
    d = src / "bin"
    write(src / "untouched", "u")
    rd.capture(str(src), str(tmp / "d0"))
    rd.apply(str(tmp / "d0"), str(tgt))

    time.sleep(0.05)  # past the timestamp granularity; mtime stays as it is
    content_mtime = os.stat(f).st_mtime_ns
    os.setxattr(f, "user.checksum", b"abc")
    if IS_ROOT:
        os.chown(f, 1234, 5678)
        os.setxattr(f, "trusted.podmig.test", b"\x00\x01")
        os.chown(d, 42, 42)
    os.chmod(f, 0o4750)  # setuid after chown, as a package manager would
    assert os.stat(f).st_mtime_ns == content_mtime  # only ctime moved: ctime must catch it

    stats = rd.capture(str(src), str(tmp / "d1"), rd.load_manifest(str(tmp / "d0")))
    changed = set(delta_json(tmp / "d1")["changed"])
    assert "bin/tool" in changed and "untouched" not in changed
    assert ("bin" in changed) == IS_ROOT
    assert stats["files"] == 1
    applied = rd.apply(str(tmp / "d1"), str(tgt))
    assert applied["files"] == 1 and applied["bytes"] == 0  # metadata only, content kept
    st = os.stat(tgt / "bin" / "tool")
    assert stat.S_IMODE(st.st_mode) == 0o4750  # setuid survives the chown
    assert os.getxattr(tgt / "bin" / "tool", "user.checksum") == b"abc"
    if IS_ROOT:
        assert (st.st_uid, st.st_gid) == (1234, 5678)
        assert os.getxattr(tgt / "bin" / "tool", "trusted.podmig.test") == b"\x00\x01"
        assert os.stat(tgt / "bin").st_uid == 42

    # An xattr removed on the source is removed on the target.
    time.sleep(0.05)
    os.removexattr(f, "user.checksum")
    rd.capture(str(src), str(tmp / "d2"), rd.load_manifest(str(tmp / "d1")))
    rd.apply(str(tmp / "d2"), str(tgt))
    assert "user.checksum" not in os.listxattr(tgt / "bin" / "tool")
    assert_same_tree(src, tgt)


def test_content_change_with_restored_mtime_is_caught(dirs):
    """cp -p, tar x and touch -r put the old mtime back: only ctime shows the change."""
    src, tgt, tmp = dirs
    f = write(src / "lib.so", "version-1")
    rd.capture(str(src), str(tmp / "d0"))
    rd.apply(str(tmp / "d0"), str(tgt))
    before = os.stat(f)
    time.sleep(0.05)
    f.write_text("version-2")  # same size
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (os.stat(f).st_size, os.stat(f).st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    rd.capture(str(src), str(tmp / "d1"), rd.load_manifest(str(tmp / "d0")))
    assert delta_json(tmp / "d1")["changed"] == ["lib.so"]
    rd.apply(str(tmp / "d1"), str(tgt))
    assert (tgt / "lib.so").read_text() == "version-2"
    assert_same_tree(src, tgt)


# --------------------------------------------------------------------------- live upper dirs


def test_racily_clean_entries_are_sent_again(dirs, monkeypatch):
    """A change within a timestamp tick of the scan may not move ctime: send such entries again."""
    monkeypatch.setattr(rd, "RACY_WINDOW_NS", 10_000_000_000)
    src, _tgt, tmp = dirs
    write(src / "db", "page")
    stats = rd.capture(str(src), str(tmp / "d0"))
    assert stats["racy"] == 2  # "db" and the root, both changed just now
    assert rd.load_manifest(str(tmp / "d0"))["db"]["racy"] is True
    # Nothing visible changed, yet the final delta sends them again.
    rd.capture(str(src), str(tmp / "d1"), rd.load_manifest(str(tmp / "d0")))
    assert delta_json(tmp / "d1")["changed"] == [".", "db"]

    monkeypatch.setattr(rd, "RACY_WINDOW_NS", 0)  # long after the change
    rd.capture(str(src), str(tmp / "d2"), rd.load_manifest(str(tmp / "d1")))
    rd.capture(str(src), str(tmp / "d3"), rd.load_manifest(str(tmp / "d2")))
    assert delta_json(tmp / "d3")["changed"] == []



def test_file_vanishing_during_capture(dirs, monkeypatch):
    src, tgt, tmp = dirs
    write(src / "stable", "s")
    write(src / "tempfile", "t")
    rd.capture(str(src), str(tmp / "d0"))
    rd.apply(str(tmp / "d0"), str(tgt))
    write(src / "tempfile", "t2, changed")
    write(src / "short-lived", "x")

    real_scan = rd.scan

    def scan_then_delete(upperdir):
        manifest = real_scan(upperdir)
        os.unlink(src / "tempfile")  # between the walk and the copy
        os.unlink(src / "short-lived")
        return manifest

    monkeypatch.setattr(rd, "scan", scan_then_delete)
    stats = rd.capture(str(src), str(tmp / "d1"), rd.load_manifest(str(tmp / "d0")))
    monkeypatch.undo()
    assert stats["vanished"] == 2
    delta = delta_json(tmp / "d1")
    assert "tempfile" not in delta["changed"] and "short-lived" not in delta["changed"]
    assert delta["removed"] == ["tempfile"]  # the target must not keep the old version
    manifest = rd.load_manifest(str(tmp / "d1"))
    assert "tempfile" not in manifest and "short-lived" not in manifest
    rd.apply(str(tmp / "d1"), str(tgt))
    # The root dir changed after the walk: the final delta (after the freeze) catches it.
    stats = rd.capture(str(src), str(tmp / "d2"), rd.load_manifest(str(tmp / "d1")))
    assert delta_json(tmp / "d2")["changed"] == ["."] and stats["removed"] == 0
    rd.apply(str(tmp / "d2"), str(tgt))
    assert_same_tree(src, tgt)


def test_file_changing_during_copy_is_dirty(dirs, monkeypatch):
    src, tgt, tmp = dirs
    log = write(src / "app.log", "line 1\n")
    real_copy = rd.copy_content

    def copy_while_writing(src_fd, dst_fd, size):
        copied = real_copy(src_fd, dst_fd, size)
        with open(log, "a") as handle:
            handle.write("line 2\n")
        return copied

    monkeypatch.setattr(rd, "copy_content", copy_while_writing)
    stats = rd.capture(str(src), str(tmp / "d0"))
    monkeypatch.undo()
    assert stats["dirty"] == 1 and delta_json(tmp / "d0")["dirty"] == ["app.log"]
    assert rd.load_manifest(str(tmp / "d0"))["app.log"]["dirty"] is True

    # The final delta sends it again, although the scan itself shows no difference.
    rd.capture(str(src), str(tmp / "d1"), rd.load_manifest(str(tmp / "d0")))
    assert delta_json(tmp / "d1")["changed"] == ["app.log"]
    rd.apply(str(tmp / "d0"), str(tgt))
    rd.apply(str(tmp / "d1"), str(tgt))
    assert (tgt / "app.log").read_text() == "line 1\nline 2\n"
    assert_same_tree(src, tgt)


def test_directory_swapped_for_symlink_during_capture(dirs, monkeypatch):
    src, _tgt, tmp = dirs
    write(src / "data" / "passwd", "container copy")
    host = write(tmp / "host" / "passwd", "HOST SECRET").parent
    real_scan = rd.scan

    def scan_then_swap(upperdir):
        manifest = real_scan(upperdir)
        os.rename(src / "data", src / "data.old")
        os.symlink(str(host), src / "data")
        return manifest

    monkeypatch.setattr(rd, "scan", scan_then_swap)
    stats = rd.capture(str(src), str(tmp / "d0"))
    monkeypatch.undo()
    assert stats["vanished"] == 1
    assert not (tmp / "d0" / "tree" / "data" / "passwd").exists()
    assert b"HOST SECRET" not in b"".join(
        v for v in contents(tmp / "d0" / "tree").values() if isinstance(v, bytes))


# --------------------------------------------------------------------------- errors


def test_errors_on_missing_or_wrong_dirs(dirs):
    src, tgt, tmp = dirs
    write(src / "f", "x")
    with pytest.raises(PodmigError, match="upper dir .* does not exist"):
        rd.capture(str(tmp / "nope"), str(tmp / "d0"))
    with pytest.raises(PodmigError, match="upper dir .* does not exist"):
        rd.scan(str(tmp / "nope"))
    with pytest.raises(PodmigError, match="inside the upper dir"):
        rd.capture(str(src), str(src / "delta"))
    foreign = tmp / "foreign"
    write(foreign / "precious", "do not delete")
    with pytest.raises(PodmigError, match="not a podmig delta dir"):
        rd.capture(str(src), str(foreign))
    assert (foreign / "precious").exists()

    rd.capture(str(src), str(tmp / "d0"))
    with pytest.raises(PodmigError, match="delta dir .* does not exist"):
        rd.apply(str(tmp / "missing"), str(tgt))
    with pytest.raises(PodmigError, match="target upper dir .* does not exist"):
        rd.apply(str(tmp / "d0"), str(tmp / "no-target"))
    with pytest.raises(PodmigError, match="is not a directory"):
        rd.apply(str(tmp / "d0"), str(src / "f"))
    with pytest.raises(PodmigError, match="manifest .* does not exist"):
        rd.load_manifest(str(tmp / "nowhere" / "manifest.json"))
    (tmp / "bad.json").write_text("[1, 2]")
    with pytest.raises(PodmigError, match="not a podmig rootfs manifest"):
        rd.load_manifest(str(tmp / "bad.json"))


def test_apply_refuses_incomplete_or_hostile_deltas(dirs):
    src, tgt, tmp = dirs
    write(src / "a" / "f", "x")
    rd.capture(str(src), str(tmp / "d0"))
    tick(src / "a" / "f")
    with open(src / "a" / "f", "w") as handle:  # in place: the directory does not change
        handle.write("z")
    rd.capture(str(src), str(tmp / "d1"), rd.load_manifest(str(tmp / "d0")))
    assert delta_json(tmp / "d1")["changed"] == ["a/f"]

    # The final delta alone lacks its parents: the pre-sync was not applied.
    with pytest.raises(PodmigError, match="apply the earlier deltas"):
        rd.apply(str(tmp / "d1"), str(tgt))

    # A target whose parent is a symlink is never written through.
    outside = tmp / "outside"
    outside.mkdir()
    os.symlink(str(outside), tgt / "a")
    delta = delta_json(tmp / "d1")
    delta["changed"] = ["a/f"]
    (tmp / "d1" / "delta.json").write_text(json.dumps(delta))
    with pytest.raises(PodmigError, match="not a directory"):
        rd.apply(str(tmp / "d1"), str(tgt))
    assert os.listdir(outside) == []

    # Paths that leave the target are refused before anything is written.
    delta["changed"] = ["../escape"]
    (tmp / "d1" / "delta.json").write_text(json.dumps(delta))
    with pytest.raises(PodmigError, match="must stay below"):
        rd.apply(str(tmp / "d1"), str(tgt))

    # A truncated tree file (an incomplete transfer) is detected.
    (tmp / "d0" / "tree" / "a" / "f").write_text("")
    os.unlink(tgt / "a")
    with pytest.raises(PodmigError, match="incomplete transfer"):
        rd.apply(str(tmp / "d0"), str(tgt))

    os.unlink(tmp / "d0" / "delta.json")
    with pytest.raises(PodmigError, match="incomplete capture"):
        rd.apply(str(tmp / "d0"), str(tgt))


def test_mounted_upperdirs_parses_mountinfo(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "44 27 0:39 / /run/ctr/rootfs rw,relatime - overlay overlay "
        "rw,lowerdir=/l1:/l2,upperdir=/var/lib/snap\\054x/fs,workdir=/var/lib/snap/work,uuid=on\n")
    assert rd.mounted_upperdirs(str(info)) == {"/var/lib/snap,x/fs": "/run/ctr/rootfs"}


def test_recapture_into_same_delta_dir_replaces_it(dirs):
    src, _tgt, tmp = dirs
    write(src / "old", "o")
    rd.capture(str(src), str(tmp / "d0"))
    os.unlink(src / "old")
    write(src / "new", "n")
    rd.capture(str(src), str(tmp / "d0"))
    assert not (tmp / "d0" / "tree" / "old").exists()
    assert set(rd.load_manifest(str(tmp / "d0"))) == {".", "new"}
