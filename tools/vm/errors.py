"""Errors of the VM runner."""

from __future__ import annotations

from bpfsign.errors import Error


class VmError(Error):
    """The guest could not be booted or did not report back."""

    def __init__(self, message: str, *, log: str | None = None) -> None:
        self.log = log
        super().__init__(message + (f" (console log: {log})" if log else ""))


class VmUnavailable(VmError):
    """This machine cannot run the VM at all (no qemu, no kernel packages, no mirror)."""
