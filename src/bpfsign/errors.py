"""One error hierarchy, so callers can ``except bpfsign.Error``.

Every error maps to a CLI exit code: 2 for bad input, 1 for a rejection or a
kernel refusal.
"""

import errno as _errno

#: Kernel-internal ENOTSUPP: reaches user space, but Python's errno has no name for it.
ENOTSUPP = 524


#: The kernel's names where Python's errno module prefers an alias (95 is ENOTSUP there).
_KERNEL_NAMES = {ENOTSUPP: "ENOTSUPP", _errno.EOPNOTSUPP: "EOPNOTSUPP"}


def errno_name(code: int) -> str:
    """Symbolic name for an errno value, as the kernel spells it (incl. the internal 524)."""
    known = _KERNEL_NAMES.get(code)
    if known is not None:
        return known
    return _errno.errorcode.get(code, f"errno {code}")


class Error(Exception):
    """Base class of every error bpfsign raises on purpose."""

    exit_code = 1


class InputError(Error):
    """A bad file or a bad argument. Names the file and, where known, the line."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.reason = message


class VerificationError(Error):
    """The signature or the scheme was rejected, with the errno the kernel would return."""

    exit_code = 1

    def __init__(self, errno: int, message: str, *, log: str = "") -> None:
        self.errno = errno
        self.log = log
        self.reason = message
        super().__init__(f"{errno_name(errno)} ({errno}): {message}")


class KernelError(Error):
    """The running kernel refused a bpf()/add_key()/keyctl() call."""

    exit_code = 1

    def __init__(
        self,
        errno: int,
        command: str,
        log: str = "",
        message: str = "",
        *,
        step: str = "",
        where: str = "",
    ) -> None:
        self.errno = errno
        self.command = command
        self.log = log
        self.hint = message
        #: which step of a skeleton load failed ("create", "fill", "freeze", "hash", "load",
        #: "run", "mmap"; empty for a lone call), and that step in words with its object
        self.step = step
        self.where = where
        text = f"{command}: {errno_name(errno)} ({errno})"
        if where:
            text += f": {where}"
        if message:
            text += f": {message}"
        tail = log.strip().splitlines()[-3:] if log else []
        if tail:
            text += "\n  verifier log: " + "\n  ".join(tail)
        super().__init__(text)


class UnsupportedFeature(Error):
    """This kernel (or this machine) cannot do what was asked."""

    exit_code = 1

    def __init__(self, name: str, why: str, *, errno: int | None = None) -> None:
        self.name = name
        self.why = why
        self.errno = errno
        super().__init__(f"{name} is not supported here: {why}")
