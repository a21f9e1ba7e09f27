# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""The container's writable layer (overlayfs upper dir) as a manifest and deltas.

A migration pre-syncs the upper dir while the container runs and sends only what
changed after the freeze:

* :func:`scan` describes every entry below an upper dir (lstat, symlink target,
  xattrs including ``trusted.overlay.*`` / ``user.overlay.*``) without following
  symlinks. Whiteouts (char devices 0/0) have the kind ``whiteout``.
* :func:`capture` writes a delta dir: ``tree/`` with every entry that is new or
  changed since a previous manifest (content, owner, mode, times, xattrs, hard
  links, device nodes, fifos, whiteouts), ``manifest.json`` (the full current
  manifest, the ``previous`` of the next round) and ``delta.json`` (what changed,
  what was removed, which paths are hard links of which).
* :func:`apply` replays a delta dir onto a target upper dir, comparing before
  writing, so that a second apply changes nothing.

Safety on a live, untrusted tree: the walk opens every directory relative to its
parent with ``O_NOFOLLOW`` and reads xattrs through ``/proc/self/fd/N/name``, so a
container that swaps a directory for a symlink during the walk cannot make the
capture read host files. Entries that vanish or are replaced during the walk are
left out of the manifest (and listed as removed when the previous round had them),
so the next delta sends them again. Files whose stat changes while they are being
copied are marked ``dirty`` in the manifest: the next delta always sends them.
Entries whose ctime is within :data:`RACY_WINDOW_NS` of the scan are marked
``racy``, as git does for "racily clean" index entries: on kernels with coarse
timestamps (before multigrain ctime, Linux 6.13) a write right after our stat can
keep the same ctime, size and mtime, so only re-sending them is safe.

Apply takes metadata from ``manifest.json`` and only file content from ``tree/``;
it refuses to write below a symlink and refuses a target upper dir that a mounted
overlay is using (writing to a mounted upper dir is undefined).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import stat
import time
from typing import Any, Dict, Iterable

from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError

MANIFEST_NAME = "manifest.json"
DELTA_NAME = "delta.json"
TREE_NAME = "tree"
FORMAT_VERSION = 1

KINDS = ("file", "dir", "symlink", "chardev", "blockdev", "fifo", "socket", "whiteout")
# Fields whose difference makes an entry "changed". ctime catches chmod, chown and
# xattr changes that leave mtime alone; ino catches a file replaced by rename.
COMPARE_FIELDS = (
    "type", "mode", "uid", "gid", "size", "mtime_ns", "ctime_ns", "ino",
    "rdev_major", "rdev_minor", "target", "xattrs",
)
# The kernel hard-links all whiteouts of an upper dir to one shared inode, whose
# ctime moves each time another whiteout is made: only these fields matter.
WHITEOUT_COMPARE_FIELDS = ("type", "mode", "uid", "gid", "rdev_major", "rdev_minor", "xattrs")
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
# A write within one timestamp tick of our stat may not move ctime on kernels with
# coarse timestamps (a tick is 1-10 ms); entries that recent are sent again.
RACY_WINDOW_NS = 100_000_000
STAT_KEYS = (
    "files", "dirs", "symlinks", "devices", "fifos", "whiteouts", "opaque_dirs",
    "hardlinks", "removed",
)

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_VANISHED = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP)
_CHUNK = 1024 * 1024
_PROC_FD = os.path.isdir("/proc/self/fd")

Entry = Dict[str, Any]
Manifest = Dict[str, Entry]


# --------------------------------------------------------------------------- helpers


def _fail(msg: str, err: OSError | None = None, **details: Any) -> PodmigError:
    if err is not None:
        msg = "%s: %s" % (msg, err.strerror or err)
    return PodmigError(msg, **details)


def _kind(st: os.stat_result) -> str:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISCHR(mode):
        return "whiteout" if st.st_rdev == 0 else "chardev"
    if stat.S_ISBLK(mode):
        return "blockdev"
    if stat.S_ISFIFO(mode):
        return "fifo"
    return "socket"


def _make_entry(st: os.stat_result, target: str | None, xattrs: dict[str, str]) -> Entry:
    entry: Entry = {
        "type": _kind(st),
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "size": st.st_size,
        "atime_ns": st.st_atime_ns,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "ino": st.st_ino,
        "nlink": st.st_nlink,
        "rdev_major": os.major(st.st_rdev),
        "rdev_minor": os.minor(st.st_rdev),
        "xattrs": xattrs,
    }
    if target is not None:
        entry["target"] = target
    return entry


def _encode_xattrs(raw: dict[str, bytes]) -> dict[str, str]:
    return {name: base64.b64encode(value).decode("ascii") for name, value in sorted(raw.items())}


def _decode_xattrs(entry: Entry) -> dict[str, bytes]:
    return {name: base64.b64decode(value) for name, value in (entry.get("xattrs") or {}).items()}


def _read_xattrs(target: int | str) -> dict[str, bytes]:
    """Raw xattrs of an fd, or of a path without following a final symlink."""
    follow = isinstance(target, int)
    try:
        names = os.listxattr(target) if follow else os.listxattr(target, follow_symlinks=False)
    except OSError as err:
        if err.errno in _NO_XATTRS:
            return {}
        raise
    values: dict[str, bytes] = {}
    for name in names:
        try:
            values[name] = os.getxattr(target, name) if follow else os.getxattr(target, name, follow_symlinks=False)
        except OSError as err:
            if err.errno != errno.ENODATA:  # removed between list and get
                raise
    return values


def _entry_xattrs_at(dir_fd: int, name: str, fallback_path: str) -> dict[str, bytes]:
    """xattrs of ``name`` inside the directory ``dir_fd`` without path races."""
    # /proc/self/fd/N is a magic link: resolving it jumps to the open directory,
    # so a directory swapped for a symlink after we opened it is not followed.
    path = "/proc/self/fd/%d/%s" % (dir_fd, name) if _PROC_FD else fallback_path
    return _read_xattrs(path)


def is_opaque(entry: Entry) -> bool:
    """True for an overlay opaque directory (hides the lower layers' content)."""
    if entry.get("type") != "dir":
        return False
    xattrs = entry.get("xattrs") or {}
    return any(base64.b64decode(xattrs[name]) == b"y" for name in OPAQUE_XATTRS if name in xattrs)


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0] or "."


def _order_key(rel: str) -> tuple[str, ...]:
    """Parents before children, siblings by name."""
    return () if rel == "." else tuple(rel.split("/"))


def _depth(rel: str) -> int:
    return 0 if rel == "." else rel.count("/") + 1


def _check_rel(rel: Any, what: str) -> str:
    if not isinstance(rel, str) or not rel:
        raise PodmigError("invalid %s path in delta: %r" % (what, rel))
    if rel == ".":
        return rel
    if rel.startswith("/") or "\0" in rel or any(part in ("", ".", "..") for part in rel.split("/")):
        raise PodmigError("invalid %s path in delta (must stay below the upper dir): %r" % (what, rel))
    return rel


def is_below(path: str, root: str) -> bool:
    """True when path is root or below it, after resolving symlinks."""
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _empty_stats() -> dict[str, Any]:
    stats: dict[str, Any] = {key: 0 for key in STAT_KEYS}
    stats["bytes"] = 0
    stats["entries"] = 0
    return stats


def _count(stats: dict[str, Any], entry: Entry, hardlink: bool = False, content: bool = True) -> None:
    stats["entries"] += 1
    if hardlink:
        stats["hardlinks"] += 1
        return
    kind = entry["type"]
    if kind == "file":
        stats["files"] += 1
        if content:
            stats["bytes"] += entry["size"]
    elif kind == "dir":
        stats["dirs"] += 1
        if is_opaque(entry):
            stats["opaque_dirs"] += 1
    elif kind == "symlink":
        stats["symlinks"] += 1
    elif kind in ("chardev", "blockdev"):
        stats["devices"] += 1
    elif kind == "fifo":
        stats["fifos"] += 1
    elif kind == "whiteout":
        stats["whiteouts"] += 1


def _write_json(path: str, data: Any) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        # ensure_ascii keeps non-UTF-8 file names (surrogate escapes) round-trippable.
        json.dump(data, handle, sort_keys=True, ensure_ascii=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_json(path: str, what: str) -> Any:
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise PodmigError("%s %s does not exist" % (what, path)) from None
    except (OSError, ValueError) as err:
        raise PodmigError("cannot read %s %s: %s" % (what, path, err)) from None


# --------------------------------------------------------------------------- scan


def _open_root(upperdir: str, what: str = "upper dir") -> int:
    try:
        return os.open(upperdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PodmigError("%s %s does not exist" % (what, upperdir)) from None
    except NotADirectoryError:
        raise PodmigError("%s %s is not a directory" % (what, upperdir)) from None
    except OSError as err:
        raise _fail("cannot open %s %s" % (what, upperdir), err) from None


def _scan_dir(dir_fd: int, dir_path: str, prefix: str, entries: Manifest) -> list[str]:
    """Record the non-directory entries of one directory, return its subdirectories."""
    try:
        with os.scandir(dir_fd) as iterator:
            names = sorted(item.name for item in iterator)
    except OSError as err:
        if err.errno in _VANISHED:
            return []
        raise
    subdirs: list[str] = []
    for name in names:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(name)
                continue
            target = os.readlink(name, dir_fd=dir_fd) if stat.S_ISLNK(st.st_mode) else None
            xattrs = _entry_xattrs_at(dir_fd, name, os.path.join(dir_path, name))
        except OSError as err:
            if err.errno in _VANISHED or err.errno == errno.EINVAL:  # gone, or no longer a symlink
                continue
            raise
        entries[prefix + name] = _make_entry(st, target, _encode_xattrs(xattrs))
    subdirs.reverse()  # popped from the end: sorted order
    return subdirs


def scan(upperdir: str) -> Manifest:
    """Manifest of every entry of an upper dir: ``{relpath: entry}``, the root as ``"."``.

    Symlinks are never followed. Entries that vanish during the walk are left out.
    """
    root_fd = _open_root(upperdir)
    entries: Manifest = {}
    stack: list[tuple[int, str, list[str]]] = []
    try:
        entries["."] = _make_entry(os.fstat(root_fd), None, _encode_xattrs(_read_xattrs(root_fd)))
        stack.append((root_fd, "", _scan_dir(root_fd, upperdir, "", entries)))
        while stack:
            dir_fd, prefix, subdirs = stack[-1]
            if not subdirs:
                stack.pop()
                if dir_fd != root_fd:
                    os.close(dir_fd)
                continue
            name = subdirs.pop()
            rel = prefix + name
            path = os.path.join(upperdir, rel)
            try:
                child_fd = os.open(name, _OPEN_DIR, dir_fd=dir_fd)
            except OSError as err:
                if err.errno not in _VANISHED:
                    raise
                # Gone, or replaced by a non-directory since we listed it: take what is there now.
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    target = os.readlink(name, dir_fd=dir_fd) if stat.S_ISLNK(st.st_mode) else None
                    xattrs = _entry_xattrs_at(dir_fd, name, path)
                except OSError as again:
                    if again.errno in _VANISHED or again.errno == errno.EINVAL:
                        continue
                    raise
                if not stat.S_ISDIR(st.st_mode):
                    entries[rel] = _make_entry(st, target, _encode_xattrs(xattrs))
                continue
            try:
                entries[rel] = _make_entry(os.fstat(child_fd), None, _encode_xattrs(_read_xattrs(child_fd)))
                children = _scan_dir(child_fd, path, rel + "/", entries)
            except BaseException:
                os.close(child_fd)
                raise
            stack.append((child_fd, rel + "/", children))
    except OSError as err:
        raise _fail("cannot scan upper dir %s" % upperdir, err) from None
    finally:
        for dir_fd, _prefix, _subdirs in stack:
            if dir_fd != root_fd:
                os.close(dir_fd)
        os.close(root_fd)
    return entries


# --------------------------------------------------------------------------- manifests


def load_manifest(path: str) -> Manifest:
    """The entries of a manifest.json, given the file or the delta dir holding it."""
    if os.path.isdir(path):
        path = os.path.join(path, MANIFEST_NAME)
    data = _read_json(path, "manifest")
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
        raise PodmigError("%s is not a podmig rootfs manifest (no 'entries' mapping)" % path)
    for rel, entry in entries.items():
        _check_rel(rel, "manifest")
        if entry.get("type") not in KINDS:
            raise PodmigError("manifest %s: entry %r has an unknown type %r" % (path, rel, entry.get("type")))
    return entries


def entry_changed(old: Entry | None, new: Entry) -> bool:
    """True when ``new`` must be sent again given what ``old`` recorded."""
    if old is None or old.get("dirty") or old.get("racy") or new.get("dirty"):
        return True
    fields = WHITEOUT_COMPARE_FIELDS if old.get("type") == new.get("type") == "whiteout" else COMPARE_FIELDS
    return any(old.get(key) != new.get(key) for key in fields)


def diff(previous: Manifest | None, current: Manifest) -> tuple[list[str], list[str], list[str]]:
    """(changed, removed, skipped sockets) from two manifests.

    ``changed`` is ordered parents first. ``removed`` holds paths of ``previous`` that
    are gone (a removed directory stands for its children) and paths that are now
    sockets, which are not sent.
    """
    previous = previous or {}
    changed: list[str] = []
    sockets: list[str] = []
    gone: set[str] = set()
    for rel, entry in current.items():
        if entry["type"] == "socket":
            sockets.append(rel)
            old = previous.get(rel)
            if old is not None and old.get("type") != "socket":
                gone.add(rel)
        elif entry_changed(previous.get(rel), entry):
            changed.append(rel)
    gone.update(rel for rel in previous if rel != "." and rel not in current)
    return sorted(changed, key=_order_key), _compact_removed(gone, previous), sorted(sockets)


def _compact_removed(gone: Iterable[str], previous: Manifest) -> list[str]:
    """Drop removed paths whose parent directory is removed too (rmtree covers them)."""
    gone = set(gone)
    kept = []
    for rel in gone:
        parent = _parent(rel)
        while parent != "." and not (parent in gone and previous.get(parent, {}).get("type") == "dir"):
            parent = _parent(parent)
        if parent == ".":
            kept.append(rel)
    return sorted(kept, key=_order_key)


# --------------------------------------------------------------------------- writing entries


class _Root:
    """Paths below a root directory that must not escape it through symlinks."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self._dirs: set[str] = {"."}

    def path(self, rel: str) -> str:
        return self.root if rel == "." else os.path.join(self.root, rel)

    def parent_state(self, rel: str) -> str:
        """"ok" when every parent of rel is a real directory, else "missing" or "blocked"."""
        parent = _parent(rel)
        if parent in self._dirs:
            return "ok"
        chain = []
        while parent not in self._dirs:
            chain.append(parent)
            parent = _parent(parent)
        for rel_dir in reversed(chain):
            try:
                st = os.lstat(self.path(rel_dir))
            except FileNotFoundError:
                return "missing"
            if not stat.S_ISDIR(st.st_mode):
                return "blocked"
            self._dirs.add(rel_dir)
        return "ok"

    def forget(self, rel: str) -> None:
        prefix = rel + "/"
        self._dirs = {d for d in self._dirs if d != rel and not d.startswith(prefix)}


class _TempNames:
    def __init__(self) -> None:
        self.count = 0

    def next(self, parent_path: str) -> str:
        self.count += 1
        return os.path.join(parent_path, ".podmig-tmp.%d.%d" % (os.getpid(), self.count))


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _remove(path: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)  # fd based on Linux: never follows symlinks
    else:
        os.unlink(path)


def _copy_range(src_fd: int, dst_fd: int, start: int, end: int) -> int:
    offset = start
    while offset < end:
        count = min(_CHUNK * 8, end - offset)
        try:
            done = os.copy_file_range(src_fd, dst_fd, count, offset, offset)
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
                raise
            data = os.pread(src_fd, min(_CHUNK, end - offset), offset)
            done = len(data)
            view = memoryview(data)
            while view:
                view = view[os.pwrite(dst_fd, view, offset + done - len(view)):]
        if done == 0:  # the source shrank while we copied
            break
        offset += done
    return offset - start


def copy_content(src_fd: int, dst_fd: int, size: int) -> int:
    """Copy ``size`` bytes keeping holes (sparse files stay sparse); bytes of data copied."""
    copied = 0
    offset = 0
    while offset < size:
        try:
            start = os.lseek(src_fd, offset, os.SEEK_DATA)
            end = min(os.lseek(src_fd, start, os.SEEK_HOLE), size)
        except OSError as err:
            if err.errno == errno.ENXIO:  # only a hole is left
                break
            if err.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
                raise
            start, end = offset, size
        if start >= size:
            break
        copied += _copy_range(src_fd, dst_fd, start, end)
        offset = end
    os.ftruncate(dst_fd, size)
    return copied


def _same_content(path: str, source: str) -> bool:
    try:
        fd_a = os.open(path, _OPEN_FILE)
    except OSError:
        return False
    try:
        with os.fdopen(os.open(source, _OPEN_FILE), "rb") as other, os.fdopen(fd_a, "rb", closefd=False) as mine:
            while True:
                a, b = mine.read(_CHUNK), other.read(_CHUNK)
                if a != b:
                    return False
                if not a:
                    return True
    finally:
        os.close(fd_a)


def _same_kind(st: os.stat_result, entry: Entry) -> bool:
    if _kind(st) != entry["type"]:
        return False
    if entry["type"] in ("chardev", "blockdev"):
        return (os.major(st.st_rdev), os.minor(st.st_rdev)) == (entry["rdev_major"], entry["rdev_minor"])
    return True


def _make_node(path: str, entry: Entry, content_from: str | None = None) -> int:
    """Create a non-directory entry at ``path`` (which must not exist); content bytes copied."""
    kind = entry["type"]
    if kind == "file":
        if content_from is None:
            raise PodmigError("no content source for %s" % path)
        src = os.open(content_from, _OPEN_FILE)
        try:
            src_st = os.fstat(src)
            if not stat.S_ISREG(src_st.st_mode):
                raise PodmigError("%s is not a regular file" % content_from)
            dst = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                return copy_content(src, dst, entry["size"])
            finally:
                os.close(dst)
        finally:
            os.close(src)
    if kind == "symlink":
        os.symlink(entry["target"], path)
    elif kind in ("chardev", "blockdev", "whiteout"):
        node_type = stat.S_IFBLK if kind == "blockdev" else stat.S_IFCHR
        os.mknod(path, node_type | 0o600, os.makedev(entry["rdev_major"], entry["rdev_minor"]))
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    else:
        raise PodmigError("cannot create a %s at %s" % (kind, path))
    return 0


def _fix_attrs(path: str, entry: Entry, st: os.stat_result | None, dry: bool, times: bool = True) -> bool:
    """Give ``path`` the owner, xattrs, mode and times of ``entry``; True if anything differed.

    Order matters: chown clears setuid bits and file capabilities, so mode and
    xattrs come after it. Directory times are set by the caller once the
    children are in place (``times=False``).
    """
    if st is None:
        return True
    changed = False
    is_link = stat.S_ISLNK(st.st_mode)
    if (st.st_uid, st.st_gid) != (entry["uid"], entry["gid"]):
        changed = True
        if dry:
            return True
        os.chown(path, entry["uid"], entry["gid"], follow_symlinks=False)
        st = os.lstat(path)
    want = _decode_xattrs(entry)
    have = _read_xattrs(path)
    if want != have:
        changed = True
        if dry:
            return True
        for name in have:
            if name not in want:
                try:
                    os.removexattr(path, name, follow_symlinks=False)
                except OSError as err:
                    if err.errno != errno.ENODATA:
                        raise
        for name, value in want.items():
            if have.get(name) != value:
                os.setxattr(path, name, value, follow_symlinks=False)
    if not is_link and stat.S_IMODE(st.st_mode) != entry["mode"]:
        changed = True
        if dry:
            return True
        os.chmod(path, entry["mode"])
    if times and st.st_mtime_ns != entry["mtime_ns"]:
        changed = True
        if not dry:
            _set_times(path, entry)
    return changed


def _set_times(path: str, entry: Entry) -> None:
    os.utime(path, ns=(entry.get("atime_ns", entry["mtime_ns"]), entry["mtime_ns"]), follow_symlinks=False)


# --------------------------------------------------------------------------- capture


class _SourceDirs:
    """Open directory fds along the current path of a parents-first walk."""

    def __init__(self, root_fd: int) -> None:
        self.chain: list[tuple[str, int]] = [("", root_fd)]

    def fd_for(self, rel_dir: str) -> int | None:
        parts = [] if rel_dir == "." else rel_dir.split("/")
        keep = 0
        while keep < len(parts) and keep + 1 < len(self.chain) and self.chain[keep + 1][0] == parts[keep]:
            keep += 1
        self._truncate(keep + 1)
        for part in parts[keep:]:
            try:
                fd = os.open(part, _OPEN_DIR, dir_fd=self.chain[-1][1])
            except OSError as err:
                if err.errno in _VANISHED:
                    return None
                raise
            self.chain.append((part, fd))
        return self.chain[-1][1]

    def _truncate(self, length: int) -> None:
        while len(self.chain) > length:
            os.close(self.chain.pop()[1])

    def close(self) -> None:
        self._truncate(1)


def _stat_moved(before: Entry, st: os.stat_result) -> bool:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) != (
        before["ino"], before["size"], before["mtime_ns"], before["ctime_ns"])


def _capture_file(sources: _SourceDirs, rel: str, entry: Entry, dst: str) -> str:
    """Copy one live file into the tree: "ok", "dirty" (changed while copied) or "vanished"."""
    dir_fd = sources.fd_for(_parent(rel))
    if dir_fd is None:
        return "vanished"
    try:
        src = os.open(rel.rpartition("/")[2], _OPEN_FILE, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in _VANISHED:
            return "vanished"
        raise
    try:
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode) or st.st_ino != entry["ino"]:
            return "vanished"  # replaced since the scan: the next delta sends the new one
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            copy_content(src, out, entry["size"])
        finally:
            os.close(out)
        return "dirty" if _stat_moved(entry, os.fstat(src)) else "ok"
    finally:
        os.close(src)


def _prepare_delta_dir(delta_dir: str) -> None:
    if os.path.lexists(delta_dir):
        if os.path.islink(delta_dir) or not os.path.isdir(delta_dir):
            raise PodmigError("delta_dir %s exists and is not a directory" % delta_dir)
        ours = {TREE_NAME, MANIFEST_NAME, DELTA_NAME, MANIFEST_NAME + ".tmp", DELTA_NAME + ".tmp"}
        foreign = sorted(set(os.listdir(delta_dir)) - ours)
        if foreign:
            raise PodmigError(
                "delta_dir %s is not empty and not a podmig delta dir (it holds %s); "
                "give an empty or new directory" % (delta_dir, ", ".join(foreign[:5])))
        # Invalidate the old delta first: a half-rewritten dir must not look complete.
        for name in (DELTA_NAME, MANIFEST_NAME, DELTA_NAME + ".tmp", MANIFEST_NAME + ".tmp"):
            if os.path.lexists(os.path.join(delta_dir, name)):
                os.unlink(os.path.join(delta_dir, name))
        if os.path.lexists(os.path.join(delta_dir, TREE_NAME)):
            shutil.rmtree(os.path.join(delta_dir, TREE_NAME))
    else:
        os.makedirs(delta_dir, mode=0o700)
    os.chmod(delta_dir, 0o700)
    os.mkdir(os.path.join(delta_dir, TREE_NAME), 0o700)


def capture(
    upperdir: str,
    delta_dir: str,
    previous_manifest: Manifest | None = None,
    check_mode: bool = False,
) -> dict[str, Any]:
    """Write the delta of ``upperdir`` since ``previous_manifest`` (everything if None).

    Returns counts of the captured entries (``files`` counts content copies,
    ``hardlinks`` the extra names of a copied inode), ``bytes`` (sum of captured
    file sizes), ``removed``, ``sockets_skipped``, ``dirty``, ``vanished`` and
    ``racy`` (entries the next delta sends again whatever their stat says).
    With ``check_mode`` nothing is written and the counts say what would be.
    """
    if not os.path.isdir(upperdir):
        raise PodmigError("upper dir %s does not exist or is not a directory" % upperdir)
    if is_below(delta_dir, upperdir):
        raise PodmigError("delta_dir %s is inside the upper dir %s" % (delta_dir, upperdir))
    if is_below(upperdir, delta_dir):
        raise PodmigError("upper dir %s is inside delta_dir %s" % (upperdir, delta_dir))
    racy_since = time.time_ns() - RACY_WINDOW_NS
    current = scan(upperdir)
    racy = [rel for rel, entry in current.items() if entry["ctime_ns"] >= racy_since]
    for rel in racy:
        current[rel]["racy"] = True
    changed, removed, sockets = diff(previous_manifest, current)
    stats = _empty_stats()
    if check_mode:
        seen: set[int] = set()
        for rel in changed:
            entry = current[rel]
            link = _linkable(entry) and entry["ino"] in seen
            if _linkable(entry):
                seen.add(entry["ino"])
            _count(stats, entry, hardlink=link)
        stats.update(removed=len(removed), sockets_skipped=len(sockets), dirty=0, vanished=0, racy=len(racy))
        return stats
    try:
        stats["racy"] = len(racy)
        return _capture(upperdir, delta_dir, previous_manifest, current, changed, removed, sockets, stats)
    except OSError as err:
        hint = ""
        if err.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            hint = (" (the delta dir must be on a filesystem that keeps device nodes, whiteouts and "
                    "trusted.* xattrs, e.g. ext4 or xfs, not overlayfs; and capture needs root)")
        raise PodmigError("cannot capture %s into %s: %s%s" % (upperdir, delta_dir, err, hint),
                          path=getattr(err, "filename", None)) from None


def _linkable(entry: Entry) -> bool:
    return entry["type"] not in ("dir", "whiteout", "socket") and entry.get("nlink", 1) > 1


def _capture(
    upperdir: str,
    delta_dir: str,
    previous: Manifest | None,
    current: Manifest,
    changed: list[str],
    removed: list[str],
    sockets: list[str],
    stats: dict[str, Any],
) -> dict[str, Any]:
    _prepare_delta_dir(delta_dir)
    tree = _Root(os.path.join(delta_dir, TREE_NAME))
    root_fd = _open_root(upperdir)
    sources = _SourceDirs(root_fd)
    primaries: dict[int, str] = {}
    hardlinks: dict[str, str] = {}
    captured: list[str] = []
    dirs: list[str] = []
    vanished: list[str] = []
    dirty: list[str] = []
    try:
        for rel in changed:
            entry = current[rel]
            path = tree.path(rel)
            if rel != ".":
                _ensure_tree_parents(tree, rel)
            if entry["type"] == "dir":
                if rel != ".":
                    os.mkdir(path, 0o700)
                dirs.append(rel)
                captured.append(rel)
                _count(stats, entry)
                continue
            primary = primaries.get(entry["ino"]) if _linkable(entry) else None
            if primary is not None:
                os.link(tree.path(primary), path, follow_symlinks=False)
                hardlinks[rel] = primary
                captured.append(rel)
                _count(stats, entry, hardlink=True)
                continue
            if entry["type"] == "file":
                outcome = _capture_file(sources, rel, entry, path)
                if outcome == "vanished":
                    vanished.append(rel)
                    if os.path.lexists(path):
                        os.unlink(path)
                    continue
                if outcome == "dirty":
                    dirty.append(rel)
            else:
                _make_node(path, entry)
            _fix_attrs(path, entry, os.lstat(path), dry=False)
            if _linkable(entry):
                primaries[entry["ino"]] = rel
            captured.append(rel)
            _count(stats, entry)
        for rel in sorted(dirs, key=_depth, reverse=True):
            path = tree.path(rel)
            _fix_attrs(path, current[rel], os.lstat(path), dry=False, times=False)
            _set_times(path, current[rel])
    finally:
        sources.close()
        os.close(root_fd)

    manifest = dict(current)
    for rel in dirty:
        manifest[rel] = dict(manifest[rel], dirty=True)
    for rel in vanished:
        del manifest[rel]
    if vanished:
        gone = set(removed) | {rel for rel in vanished if previous and rel in previous}
        removed = _compact_removed(gone, previous or {})
    stats.update(removed=len(removed), sockets_skipped=len(sockets), dirty=len(dirty), vanished=len(vanished))
    _write_json(os.path.join(delta_dir, MANIFEST_NAME), {
        "format": "podmig-rootfs-manifest",
        "version": FORMAT_VERSION,
        "upperdir": upperdir,
        "entries": manifest,
    })
    _write_json(os.path.join(delta_dir, DELTA_NAME), {
        "format": "podmig-rootfs-delta",
        "version": FORMAT_VERSION,
        "changed": captured,
        "removed": removed,
        "hardlinks": hardlinks,
        "bytes": stats["bytes"],
        "previous": previous is not None,
        "sockets_skipped": sockets,
        "dirty": dirty,
        "vanished": vanished,
        "stats": stats,
    })
    return stats


def _ensure_tree_parents(tree: _Root, rel: str) -> None:
    """Plain 0700 directories for parents that did not change (they are not applied)."""
    missing = []
    parent = _parent(rel)
    while parent != "." and not os.path.isdir(tree.path(parent)):
        missing.append(parent)
        parent = _parent(parent)
    for rel_dir in reversed(missing):
        os.mkdir(tree.path(rel_dir), 0o700)


# --------------------------------------------------------------------------- apply


def load_delta(delta_dir: str) -> tuple[dict[str, Any], Manifest]:
    """delta.json and manifest.json of a delta dir, validated."""
    if not os.path.isdir(delta_dir):
        raise PodmigError("delta dir %s does not exist or is not a directory" % delta_dir)
    path = os.path.join(delta_dir, DELTA_NAME)
    delta = _read_json(path, "delta (an incomplete capture has none)")
    if not isinstance(delta, dict) or not isinstance(delta.get("changed"), list) \
            or not isinstance(delta.get("removed"), list) or not isinstance(delta.get("hardlinks"), dict):
        raise PodmigError("%s is not a podmig rootfs delta (changed/removed/hardlinks missing)" % path)
    manifest = load_manifest(delta_dir)
    changed = set()
    for rel in delta["changed"]:
        changed.add(_check_rel(rel, "changed"))
        if rel not in manifest:
            raise PodmigError("%s: changed path %r is not in the manifest" % (path, rel))
    for rel in delta["removed"]:
        if _check_rel(rel, "removed") == ".":
            raise PodmigError("%s: the root cannot be removed" % path)
    for rel, primary in delta["hardlinks"].items():
        _check_rel(rel, "hard link")
        if rel not in changed or primary not in changed or primary in delta["hardlinks"]:
            raise PodmigError("%s: hard link %r -> %r does not name captured paths" % (path, rel, primary))
    return delta, manifest


def mounted_upperdirs(mountinfo: str = "/proc/self/mountinfo") -> dict[str, str]:
    """``{upperdir: mount point}`` of the overlay mounts in this mount namespace."""
    found: dict[str, str] = {}
    try:
        with open(mountinfo, "r", encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return found
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = right.split(" ")
        if not sep or len(fields) < 3 or fields[0] != "overlay":
            continue
        for option in fields[2].split(","):
            if option.startswith("upperdir="):
                mount_point = _unescape(left.split(" ")[4]) if len(left.split(" ")) > 4 else "?"
                found[os.path.realpath(_unescape(option[len("upperdir="):]))] = mount_point
    return found


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 4 <= len(text) and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def apply(delta_dir: str, target_upperdir: str, check_mode: bool = False) -> dict[str, Any]:
    """Replay a delta dir onto ``target_upperdir``; counts of what changed (0 when already applied).

    Removed paths go first (deepest first), then changed entries parents first,
    then hard links, then directory times. With ``check_mode`` nothing is written.
    """
    if not os.path.lexists(target_upperdir):
        raise PodmigError("target upper dir %s does not exist" % target_upperdir)
    if os.path.islink(target_upperdir) or not os.path.isdir(target_upperdir):
        raise PodmigError("target upper dir %s is not a directory" % target_upperdir)
    delta, manifest = load_delta(delta_dir)
    if is_below(target_upperdir, delta_dir) or is_below(delta_dir, target_upperdir):
        raise PodmigError("target upper dir %s and delta dir %s overlap" % (target_upperdir, delta_dir))
    mount = mounted_upperdirs().get(os.path.realpath(target_upperdir))
    if mount:
        raise PodmigError(
            "target upper dir %s is the upper dir of the overlay mounted at %s; writing below a mounted "
            "overlay is undefined: apply before the container's rootfs is mounted" % (target_upperdir, mount))
    try:
        return _Applier(delta_dir, target_upperdir, delta, manifest, check_mode).run()
    except OSError as err:
        raise PodmigError("cannot apply %s to %s: %s" % (delta_dir, target_upperdir, err),
                          path=getattr(err, "filename", None)) from None


class _Applier:
    def __init__(self, delta_dir: str, target: str, delta: dict[str, Any], manifest: Manifest, dry: bool) -> None:
        self.tree = _Root(os.path.join(delta_dir, TREE_NAME))
        self.target = _Root(target)
        self.delta = delta
        self.manifest = manifest
        self.dry = dry
        self.temp = _TempNames()
        self.stats = _empty_stats()
        self.fresh: set[str] = set()  # check mode: paths that would be (re)created
        self.dirs: list[str] = []
        self.touched: set[str] = set()

    def run(self) -> dict[str, Any]:
        for rel in sorted(self.delta["removed"], key=lambda r: (-_depth(r), r)):
            self._remove(rel)
        hardlinks = self.delta["hardlinks"]
        for rel in sorted(self.delta["changed"], key=_order_key):
            if rel not in hardlinks:
                self._entry(rel, self.manifest[rel])
        for rel in sorted(hardlinks, key=_order_key):
            self._link(rel, hardlinks[rel])
        if not self.dry:
            times = set(self.dirs) | {rel for rel in self.touched if self.manifest.get(rel, {}).get("type") == "dir"}
            for rel in sorted(times, key=_depth, reverse=True):
                st = _lstat(self.target.path(rel))
                if st is not None and stat.S_ISDIR(st.st_mode) and st.st_mtime_ns != self.manifest[rel]["mtime_ns"]:
                    _set_times(self.target.path(rel), self.manifest[rel])
        self.stats["changed"] = self.stats["entries"] + self.stats["removed"]
        return self.stats

    def _would_be_fresh(self, rel: str) -> bool:
        parent = _parent(rel)
        while parent != ".":
            if parent in self.fresh:
                return True
            parent = _parent(parent)
        return False

    def _parent_ok(self, rel: str) -> None:
        state = self.target.parent_state(rel)
        if state == "missing":
            raise PodmigError(
                "cannot apply %s: its parent directory is missing in the target upper dir %s; "
                "apply the earlier deltas (the pre-sync) first" % (rel, self.target.root))
        if state == "blocked":
            raise PodmigError("cannot apply %s: a parent in %s is not a directory (or is a symlink)"
                              % (rel, self.target.root))

    def _remove(self, rel: str) -> None:
        if self.target.parent_state(rel) != "ok":
            return  # a parent is gone or is not a directory: nothing to remove below it
        path = self.target.path(rel)
        st = _lstat(path)
        if st is None:
            return
        if not self.dry:
            _remove(path, st)
            self.target.forget(rel)
        self.touched.add(_parent(rel))
        self.stats["removed"] += 1

    def _entry(self, rel: str, entry: Entry) -> None:
        if self.dry and self._would_be_fresh(rel):
            self.fresh.add(rel)
            _count(self.stats, entry)
            return
        if rel != ".":
            self._parent_ok(rel)
        path = self.target.path(rel)
        st = _lstat(path)
        if entry["type"] == "dir":
            outcome = "attrs" if self._dir(rel, path, entry, st) else ""
        else:
            outcome = self._node(rel, path, entry, st)
        if outcome:
            self.touched.add(_parent(rel))
            _count(self.stats, entry, content=outcome == "content")

    def _dir(self, rel: str, path: str, entry: Entry, st: os.stat_result | None) -> bool:
        if rel == "." and (st is None or not stat.S_ISDIR(st.st_mode)):
            raise PodmigError("the manifest root must be a directory")
        self.dirs.append(rel)
        if st is not None and stat.S_ISDIR(st.st_mode):
            # Compare the time now: applying the children moves it, the last pass restores it.
            stale_time = st.st_mtime_ns != entry["mtime_ns"]
            return _fix_attrs(path, entry, st, self.dry, times=False) or stale_time
        if self.dry:
            self.fresh.add(rel)
            return True
        if st is not None:
            _remove(path, st)
            self.target.forget(rel)
        os.mkdir(path, 0o700)
        _fix_attrs(path, entry, os.lstat(path), dry=False, times=False)
        return True

    def _node(self, rel: str, path: str, entry: Entry, st: os.stat_result | None) -> str:
        """"content" when (re)created, "attrs" when only metadata was fixed, "" when equal."""
        source = None
        if entry["type"] == "file":
            source = self.tree.path(rel)
            src_st = _lstat(source)
            if src_st is None or not stat.S_ISREG(src_st.st_mode) or src_st.st_size != entry["size"]:
                raise PodmigError(
                    "delta tree file %s is missing or has %s bytes where the manifest says %d "
                    "(incomplete transfer?)" % (source, src_st.st_size if src_st else "no", entry["size"]))
        same = st is not None and _same_kind(st, entry)
        if same and entry["type"] == "symlink":
            same = os.readlink(path) == entry["target"]
        if same and entry["type"] == "file":
            same = st.st_size == entry["size"] and _same_content(path, source or "")
        if same:
            return "attrs" if _fix_attrs(path, entry, st, self.dry) else ""
        if self.dry:
            self.fresh.add(rel)
            return "content"
        tmp = self.temp.next(os.path.dirname(path))
        try:
            _make_node(tmp, entry, source)
            _fix_attrs(tmp, entry, os.lstat(tmp), dry=False)
            if st is not None and stat.S_ISDIR(st.st_mode):
                shutil.rmtree(path)
                self.target.forget(rel)
            os.rename(tmp, path)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        return "content"

    def _link(self, rel: str, primary: str) -> None:
        entry = self.manifest[rel]
        if self.dry and (primary in self.fresh or self._would_be_fresh(rel)):
            _count(self.stats, entry, hardlink=True)
            return
        self._parent_ok(rel)
        path, primary_path = self.target.path(rel), self.target.path(primary)
        st, primary_st = _lstat(path), _lstat(primary_path)
        if primary_st is None:
            raise PodmigError("cannot link %s: %s is missing in the target" % (rel, primary))
        if st is not None and (st.st_dev, st.st_ino) == (primary_st.st_dev, primary_st.st_ino):
            return
        self.touched.add(_parent(rel))
        _count(self.stats, entry, hardlink=True)
        if self.dry:
            return
        tmp = self.temp.next(os.path.dirname(path))
        os.link(primary_path, tmp, follow_symlinks=False)
        try:
            if st is not None and stat.S_ISDIR(st.st_mode):
                shutil.rmtree(path)
                self.target.forget(rel)
            os.rename(tmp, path)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
