"""Atomic writes: whole files or none, errors that name the target, links followed."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from bpfsign._fileio import atomic_write, read_input
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


# ---------------------------------------------------------------- bounded reads


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    target = tmp_path / "blob.bin"
    target.write_bytes(b"x" * 5000)
    assert read_input(target, limit=5000) == b"x" * 5000


def test_a_file_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    with open(target, "wb") as fh:
        fh.truncate(1 << 40)  # sparse: 1 TiB that must never be read
    with pytest.raises(InputError) as info:
        read_input(target, limit=1 << 20, what="signature")
    assert str(info.value) == (
        f"{target}: is {1 << 40} bytes, more than the {1 << 20} bytes a signature may have"
    )


def test_dev_zero_is_refused_not_read_until_memory_runs_out() -> None:
    with pytest.raises(InputError) as info:
        read_input("/dev/zero", limit=1 << 20, what="light skeleton header")
    assert str(info.value) == (
        "/dev/zero: is a character device, not a regular file; bpfsign reads a light "
        "skeleton header only from a regular file"
    )


def test_dev_zero_when_allowed_stops_at_the_limit() -> None:
    with pytest.raises(InputError) as info:
        read_input("/dev/zero", limit=4096, allow_special=True)
    assert str(info.value) == "/dev/zero: has more than the 4096 bytes a file may have"


def test_a_fifo_without_a_writer_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as info:
        read_input(fifo, limit=100)
    assert str(info.value) == (
        f"{fifo}: is a FIFO, not a regular file; bpfsign reads a file only from a regular file"
    )


def test_a_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read_input(tmp_path, limit=100, what="certificate")
    assert str(info.value) == f"{tmp_path}: is a directory, expected a file"


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read_input(tmp_path / "nope", limit=100)
    assert str(info.value) == f"{tmp_path / 'nope'}: file not found"


# ------------------------------------------------------------- nothing lost on write


def test_a_character_device_target_is_refused_not_replaced() -> None:
    before = os.stat("/dev/null")
    with pytest.raises(InputError) as info:
        atomic_write("/dev/null", b"signature")
    assert str(info.value) == (
        "/dev/null: is a character device; bpfsign replaces only regular files "
        "(write to a regular file's path instead)"
    )
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_a_hard_linked_target_is_refused_unless_asked(tmp_path: Path) -> None:
    target = tmp_path / "a.lskel.h"
    target.write_bytes(b"old")
    os.link(target, tmp_path / "b.lskel.h")
    with pytest.raises(InputError) as info:
        atomic_write(target, b"new")
    assert str(info.value) == (
        f"{target}: has 2 hard links; replacing it would detach it from the others "
        "(write to a new file, or allow breaking the links)"
    )
    assert target.read_bytes() == b"old"
    atomic_write(target, b"new", break_hardlinks=True)
    assert target.read_bytes() == b"new"
    assert (tmp_path / "b.lskel.h").read_bytes() == b"old"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file another owner")
def test_owner_group_and_mode_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "h.lskel.h"
    target.write_bytes(b"old")
    os.chown(target, 1234, 5678)
    target.chmod(0o604)
    atomic_write(target, b"new")
    st = target.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o604)
    assert target.read_bytes() == b"new"


def test_a_dead_writers_temp_file_is_removed_and_reported(tmp_path: Path) -> None:
    target = tmp_path / "h.lskel.h"
    target.write_bytes(b"old")
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".h.lskel.h.bpfsign-{dead.pid}-0123abcd.tmp"
    stale.write_bytes(b"half")
    live = tmp_path / f".h.lskel.h.bpfsign-{os.getppid()}-0123abcd.tmp"  # a live writer's
    live.write_bytes(b"busy")
    other = tmp_path / f".other.h.bpfsign-{dead.pid}-0123abcd.tmp"  # another target's
    other.write_bytes(b"x")
    with pytest.warns(RuntimeWarning) as caught:
        atomic_write(target, b"new")
    assert [str(w.message) for w in caught] == [
        f"removed {stale}, an incomplete write of {target} left by a killed run "
        f"(pid {dead.pid}); {target} itself was never touched by it"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, live.name, other.name]
    )
