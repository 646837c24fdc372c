"""bpfsign.kernel.fd: close once, and a dropped fd is closed by its finalizer with a warning."""

from __future__ import annotations

import gc
import os
import warnings

import pytest

from bpfsign.kernel.fd import FD


def _open(fd: int) -> bool:
    return os.path.exists(f"/proc/self/fd/{fd}")  # a stat: opens no fd that could reuse it


def test_close_is_once_and_the_number_is_gone_after() -> None:
    r, w = os.pipe()
    os.close(w)
    fd = FD(r, "map counts")
    assert (int(fd), fd.fileno(), fd.closed) == (r, r, False)
    fd.close()
    fd.close()  # idempotent: a reused number is never closed twice
    assert fd.closed and not _open(r)
    with pytest.raises(ValueError, match=r"^map counts: fd is closed$"):
        int(fd)


def test_dropped_fd_is_closed_with_a_resource_warning() -> None:
    r, w = os.pipe()
    os.close(w)
    fd = FD(r, "prog count_getpid")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del fd
        gc.collect()
    assert [(c.category, str(c.message)) for c in caught] == [
        (ResourceWarning, f"unclosed fd {r} (prog count_getpid)")
    ]
    assert not _open(r)


def test_detach_gives_up_ownership() -> None:
    r, w = os.pipe()
    os.close(w)
    fd = FD(r, "link x")
    assert fd.detach() == r
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del fd
        gc.collect()
    assert _open(r)
    os.close(r)


def test_closer_is_the_backends() -> None:
    closed: list[int] = []
    fd = FD(1 << 20, "map m", closed.append)  # a kernel-model fd: not a process fd
    fd.close()
    assert closed == [1 << 20]
    assert repr(fd) == "<FD closed map m>"
