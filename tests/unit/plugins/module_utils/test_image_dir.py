# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the private image directory helpers."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.podmig.live.plugins.module_utils import image_dir as images
from ansible_collections.podmig.live.plugins.module_utils.errors import PodmigError


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_ensure_private_dir_creates_0700_with_parents(tmp_path, loose_umask):
    target = tmp_path / "a" / "b" / "img"
    assert images.ensure_private_dir(str(target)) is True
    assert target.is_dir()
    assert mode(target) == 0o700
    # parents it created are private too
    assert mode(tmp_path / "a") == 0o700
    assert mode(tmp_path / "a" / "b") == 0o700


def test_ensure_private_dir_leaves_existing_parents_alone(tmp_path):
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o755)
    images.ensure_private_dir(str(parent / "img"))
    assert mode(parent) == 0o755


def test_ensure_private_dir_tightens_existing(tmp_path):
    target = tmp_path / "img"
    target.mkdir()
    target.chmod(0o755)
    assert images.ensure_private_dir(str(target)) is True
    assert mode(target) == 0o700


def test_ensure_private_dir_is_idempotent(tmp_path):
    target = tmp_path / "img"
    images.ensure_private_dir(str(target))
    assert images.ensure_private_dir(str(target)) is False
    assert images.ensure_private_dir(str(target) + "/") is False
    assert mode(target) == 0o700


def test_ensure_private_dir_refuses_file(tmp_path):
    target = tmp_path / "img"
    target.write_text("x")
    with pytest.raises(PodmigError, match="exists and is not a directory"):
        images.ensure_private_dir(str(target))


def test_ensure_private_dir_refuses_dangling_symlink(tmp_path):
    target = tmp_path / "img"
    target.symlink_to(tmp_path / "missing")
    with pytest.raises(PodmigError, match="exists and is not a directory"):
        images.ensure_private_dir(str(target))


def test_make_private_tree(tmp_path):
    root = tmp_path / "img"
    (root / "sub").mkdir(parents=True)
    (root / "pages-1.img").write_bytes(b"x" * 10)
    (root / "sub" / "core.img").write_bytes(b"y")
    outside = tmp_path / "outside"
    outside.write_text("keep")
    for path in (root, root / "sub"):
        path.chmod(0o755)
    for path in (root / "pages-1.img", root / "sub" / "core.img", outside):
        path.chmod(0o644)
    (root / "link").symlink_to(outside)

    images.make_private(str(root))

    assert mode(root) == 0o700
    assert mode(root / "sub") == 0o700
    assert mode(root / "pages-1.img") == 0o600
    assert mode(root / "sub" / "core.img") == 0o600
    assert mode(outside) == 0o644  # the symlink's target is not touched


def test_tree_bytes_counts_regular_files_only(tmp_path):
    root = tmp_path / "img"
    (root / "sub").mkdir(parents=True)
    (root / "a").write_bytes(b"x" * 1000)
    (root / "sub" / "b").write_bytes(b"y" * 24)
    big = tmp_path / "big"
    big.write_bytes(b"z" * 100000)
    (root / "link").symlink_to(big)
    (root / "linkdir").symlink_to(tmp_path)  # not followed
    os.mkfifo(root / "fifo")
    assert images.tree_bytes(str(root)) == 1024


def test_tree_bytes_missing_and_empty(tmp_path):
    assert images.tree_bytes(str(tmp_path / "missing")) == 0
    assert images.tree_bytes(str(tmp_path)) == 0


def test_tree_bytes_counts_apparent_size_of_sparse_file(tmp_path):
    sparse = tmp_path / "pages.img"
    with open(sparse, "wb") as handle:
        handle.truncate(1 << 20)
    assert images.tree_bytes(str(tmp_path)) == 1 << 20


def test_has_dump(tmp_path):
    assert images.has_dump(str(tmp_path)) is False
    (tmp_path / "inventory.img").mkdir()
    assert images.has_dump(str(tmp_path)) is False  # a directory is not the file
    (tmp_path / "inventory.img").rmdir()
    (tmp_path / "inventory.img").write_bytes(b"\x00")
    assert images.has_dump(str(tmp_path)) is True
    assert images.has_dump(str(tmp_path / "missing")) is False


def test_is_empty(tmp_path):
    assert images.is_empty(str(tmp_path / "missing")) is True
    assert images.is_empty(str(tmp_path)) is True
    (tmp_path / ".hidden").write_text("")
    assert images.is_empty(str(tmp_path)) is False
