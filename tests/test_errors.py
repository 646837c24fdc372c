"""Errno names as the kernel spells them, and the messages errors carry."""

from __future__ import annotations

import errno

from bpfsign.errors import ENOTSUPP, InputError, KernelError, VerificationError, errno_name


def test_errno_names_follow_the_kernel() -> None:
    assert errno_name(errno.EOPNOTSUPP) == "EOPNOTSUPP"  # Python calls 95 ENOTSUP
    assert errno_name(ENOTSUPP) == "ENOTSUPP"
    assert errno_name(errno.EKEYREJECTED) == "EKEYREJECTED"
    assert errno_name(9999) == "errno 9999"


def test_messages_name_the_errno_file_and_log() -> None:
    assert str(VerificationError(errno.ENOKEY, "no key")) == "ENOKEY (126): no key"
    assert str(InputError("bad escape", path="x.lskel.h", line=7)) == "x.lskel.h:7: bad escape"
    err = KernelError(errno.EACCES, "BPF_PROG_LOAD", "a\nb\nc\nlast line\n")
    assert str(err) == "BPF_PROG_LOAD: EACCES (13)\n  verifier log: b\n  c\n  last line"
