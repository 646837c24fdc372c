"""Atomic writes: whole files or none, errors that name the target, links followed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bpfsign._fileio import atomic_write
from bpfsign.errors import InputError


def test_new_file_gets_the_data_and_a_private_mode(tmp_path: Path) -> None:
    target = tmp_path / "k.key"
    atomic_write(target, b"secret", mode=0o600)
    assert target.read_bytes() == b"secret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"]  # no temp file left


def test_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "h.lskel.h"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_a_symlink_is_followed_not_replaced(tmp_path: Path) -> None:
    real = tmp_path / "real.lskel.h"
    real.write_bytes(b"unsigned")
    link = tmp_path / "link.lskel.h"
    link.symlink_to(real)
    atomic_write(link, b"signed")
    assert link.is_symlink()
    assert real.read_bytes() == b"signed"


def test_missing_directory_is_named(tmp_path: Path) -> None:
    target = tmp_path / "nope" / "out.h"
    with pytest.raises(InputError) as info:
        atomic_write(target, b"x")
    assert str(info.value) == (
        f"{target}: cannot write: directory {str(tmp_path / 'nope')!r} does not exist"
    )


def test_a_directory_target_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        atomic_write(tmp_path, b"x")
    assert str(info.value) == f"{tmp_path}: is a directory, expected a file name to write"


def test_unwritable_directory_names_the_target_not_a_temp_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/sys/out.h")  # sysfs refuses new files even to root
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "out.h"
    with pytest.raises(InputError) as info:
        atomic_write(target, b"x")
    assert str(info.value) == f"{target}: cannot write: Permission denied"
