# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""podmig.live.rootfs_diff against a real overlayfs mount, run through ansible.

A container's rootfs is simulated by an overlay (lower = image, upper = writable
layer). The kernel makes the whiteouts, opaque dirs and copy-ups. The module
captures a pre-sync and a final delta of the upper dir, applies both to an empty
upper dir, and a second overlay over the same lower and that upper must show the
same merged tree as the first.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

import pytest

from support.ansible_runner import run_module as run_ansible_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting overlayfs and creating whiteouts needs root")


# --------------------------------------------------------------------------- helpers


def run_module(args: dict, tmp_path, check: bool = False) -> tuple[int, dict]:
    """Run podmig.live.rootfs_diff on localhost through ansible; (rc, module result)."""
    result = run_ansible_module("rootfs_diff", args, check=check)
    return result.pop("rc_ansible"), dict(result)


def module_ok(args: dict, tmp_path, check: bool = False) -> dict:
    rc, result = run_module(args, tmp_path, check=check)
    assert rc == 0 and not result.get("failed"), result
    return result


class Mounts:
    """Overlay mounts made by this test, unmounted in reverse order at teardown."""

    def __init__(self) -> None:
        self.points: list[str] = []

    def overlay(self, lower, upper, work, merged) -> None:
        for path in (upper, work, merged):
            os.makedirs(path, exist_ok=True)
        options = "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work)
        proc = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip("cannot mount overlayfs here: %s" % proc.stderr.strip())
        self.points.append(str(merged))

    def unmount(self, merged) -> None:
        subprocess.run(["umount", str(merged)], check=True)
        self.points.remove(str(merged))

    def cleanup(self) -> None:
        for point in reversed(self.points):
            if os.path.ismount(point):
                subprocess.run(["umount", point], check=False)
        self.points.clear()


@pytest.fixture
def mounts():
    made = Mounts()
    yield made
    made.cleanup()


def merged_view(root) -> dict:
    """What a container sees: names, types, modes, owners, contents, targets, user xattrs."""
    seen = {}
    root = str(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            item = {"fmt": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode),
                    "uid": st.st_uid, "gid": st.st_gid}
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    item["content"] = handle.read()
                item["mtime_ns"] = st.st_mtime_ns
            elif stat.S_ISLNK(st.st_mode):
                item["target"] = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                item["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            if not stat.S_ISLNK(st.st_mode):
                item["xattrs"] = {n: os.getxattr(path, n, follow_symlinks=False)
                                  for n in os.listxattr(path, follow_symlinks=False)}
            seen[os.path.relpath(path, root)] = item
    return seen


def write(path, text: str, mode: int | None = None) -> None:
    with open(path, "w") as handle:
        handle.write(text)
    if mode is not None:
        os.chmod(path, mode)


# --------------------------------------------------------------------------- the test


def test_rootfs_diff_through_real_overlays(tmp_path, mounts):
    lower = tmp_path / "image"
    up1, work1, merged1 = tmp_path / "src-upper", tmp_path / "src-work", tmp_path / "src-merged"
    up2, work2, merged2 = tmp_path / "dst-upper", tmp_path / "dst-work", tmp_path / "dst-merged"
    d0, d1, d2 = tmp_path / "delta-0", tmp_path / "delta-1", tmp_path / "delta-2"

    # The image (lower layer).
    for rel in ("etc", "usr/share/doc", "var/cache/apt", "opt/app"):
        os.makedirs(lower / rel)
    write(lower / "etc" / "motd", "welcome\n")
    write(lower / "etc" / "hostname", "image\n")
    write(lower / "etc" / "config", "v=1\n", 0o644)
    write(lower / "usr" / "share" / "doc" / "README", "docs\n")
    write(lower / "usr" / "share" / "doc" / "LICENSE", "license\n")
    write(lower / "var" / "cache" / "apt" / "pkgcache.bin", "cache\n")
    write(lower / "opt" / "app" / "old-plugin", "old\n")
    write(lower / "opt" / "app" / "binary", "ELF\n", 0o755)
    mounts.overlay(lower, up1, work1, merged1)
    m1 = merged1

    # The running container changes its rootfs.
    os.makedirs(m1 / "data" / "db")
    write(m1 / "data" / "db" / "table", "rows\n" * 1000)
    os.link(m1 / "data" / "db" / "table", m1 / "data" / "table-link")
    os.unlink(m1 / "etc" / "motd")                          # whiteout
    shutil.rmtree(m1 / "opt" / "app")                        # rm -rf a lower dir...
    os.mkdir(m1 / "opt" / "app")                             # ...and recreate it: opaque
    write(m1 / "opt" / "app" / "binary", "new ELF\n", 0o755)
    os.chmod(m1 / "etc" / "config", 0o600)                   # copy-up, metadata only
    os.chown(m1 / "etc" / "hostname", 1000, 1000)            # copy-up, owner
    os.symlink("../etc/config", m1 / "data" / "config-link")
    os.symlink("/nonexistent/target", m1 / "data" / "dangling")
    os.mkfifo(m1 / "data" / "control.fifo")
    os.mknod(m1 / "data" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.setxattr(m1 / "data" / "db" / "table", "user.podmig", b"tagged")
    os.makedirs(m1 / "tmp" / "scratch")
    write(m1 / "tmp" / "scratch" / "junk", "junk\n")

    upper_names = set(os.listdir(up1 / "etc"))
    motd = os.lstat(up1 / "etc" / "motd")
    assert stat.S_ISCHR(motd.st_mode) and motd.st_rdev == 0, "the kernel did not make a 0/0 whiteout"
    assert os.getxattr(up1 / "opt" / "app", "trusted.overlay.opaque") == b"y", "recreated dir is not opaque"
    assert {"motd", "config", "hostname"} <= upper_names

    # Pre-sync while running: check mode first (writes nothing), then for real.
    pre = {"state": "captured", "upperdir": str(up1), "delta_dir": str(d0)}
    predicted = module_ok(pre, tmp_path, check=True)
    assert predicted["changed"] is True and not d0.exists()
    presync = module_ok(pre, tmp_path)
    assert presync["changed"] is True
    assert presync["whiteouts"] == 1 and presync["opaque_dirs"] == 1 and presync["hardlinks"] == 1
    assert presync["fifos"] == 1 and presync["devices"] == 1 and presync["symlinks"] == 2
    assert {k: predicted[k] for k in ("files", "dirs", "bytes", "whiteouts")} == \
        {k: presync[k] for k in ("files", "dirs", "bytes", "whiteouts")}
    assert stat.S_IMODE(os.stat(d0).st_mode) == 0o700

    # More changes before the freeze.
    write(m1 / "data" / "db" / "table", "rows\n" * 2000)       # through the hard link's inode
    os.unlink(m1 / "usr" / "share" / "doc" / "LICENSE")       # another whiteout
    shutil.rmtree(m1 / "tmp" / "scratch")                      # upper-only dir: simply gone
    os.unlink(m1 / "data" / "control.fifo")
    with open(m1 / "var" / "cache" / "apt" / "pkgcache.bin", "a") as handle:
        handle.write("more\n")                                 # copy-up with content
    os.makedirs(m1 / "data" / "new" / "deep")
    write(m1 / "data" / "new" / "deep" / "file", "late\n", 0o640)
    os.chmod(m1 / "opt" / "app" / "binary", 0o700)

    final = {"state": "captured", "upperdir": str(up1), "delta_dir": str(d1), "previous": str(d0)}
    predicted = module_ok(final, tmp_path, check=True)
    assert predicted["changed"] is True and not d1.exists()
    delta = module_ok(final, tmp_path)
    assert delta["changed"] is True and delta["removed"] == 2  # tmp/scratch and the fifo
    assert delta["whiteouts"] == 1 and delta["hardlinks"] == 1
    assert delta["files"] < presync["files"] + 2
    changed = set(json.loads((d1 / "delta.json").read_text())["changed"])
    assert "etc/motd" not in changed and "usr/share/doc/LICENSE" in changed
    # Nothing changed since: a capture against the final delta is empty.
    again = module_ok({"state": "captured", "upperdir": str(up1), "delta_dir": str(d2), "previous": str(d1)},
                      tmp_path)
    assert again["changed"] is False and again["entries"] == 0 and again["removed"] == 0

    # Apply both to an empty upper dir: check mode first.
    os.makedirs(up2)
    apply0 = {"state": "applied", "delta_dir": str(d0), "target_upperdir": str(up2)}
    apply1 = {"state": "applied", "delta_dir": str(d1), "target_upperdir": str(up2)}
    assert module_ok(apply0, tmp_path, check=True)["changed"] is True
    assert os.listdir(up2) == []
    assert module_ok(apply0, tmp_path)["changed"] is True
    assert module_ok(apply1, tmp_path)["changed"] is True
    second = module_ok(apply1, tmp_path)
    assert second["changed"] is False and second["entries"] == 0
    assert module_ok(apply1, tmp_path, check=True)["changed"] is False

    # The target container's rootfs: same lower, the rebuilt upper.
    mounts.overlay(lower, up2, work2, merged2)
    source_view, target_view = merged_view(merged1), merged_view(merged2)
    assert sorted(target_view) == sorted(source_view)
    assert target_view == source_view
    assert "etc/motd" not in target_view and "usr/share/doc/LICENSE" not in target_view
    assert sorted(os.listdir(merged2 / "opt" / "app")) == ["binary"]  # not the image's old-plugin
    assert (merged2 / "data" / "db" / "table").read_text() == "rows\n" * 2000
    assert os.stat(merged2 / "data" / "db" / "table").st_ino == os.stat(merged2 / "data" / "table-link").st_ino
    assert not (merged2 / "tmp" / "scratch").exists() and not (merged2 / "data" / "control.fifo").exists()
    assert (merged2 / "etc" / "hostname").stat().st_uid == 1000
    assert os.readlink(merged2 / "data" / "config-link") == "../etc/config"
    assert (merged2 / "data" / "config-link").read_text() == "v=1\n"
    assert os.getxattr(merged2 / "data" / "db" / "table", "user.podmig") == b"tagged"

    # Writing below a mounted overlay is refused.
    rc, refused = run_module(apply1, tmp_path)
    assert rc != 0 and "mounted" in refused["msg"]
    rc, missing = run_module({"state": "captured", "upperdir": str(tmp_path / "nope"),
                              "delta_dir": str(tmp_path / "delta-x")}, tmp_path)
    assert rc != 0 and "does not exist" in missing["msg"]

    mounts.unmount(merged2)
    mounts.unmount(merged1)
