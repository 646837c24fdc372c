"""A light skeleton's verdict, decided offline for a chosen kernel.

The library's ``verify_skeleton``, ``bpfsign verify`` and the demo all ask
this module, and it asks :mod:`.rules`: the skeleton becomes the
BPF_PROG_LOAD that ``skel_internal.h`` issues (:func:`.rules.skeleton_load`),
and the kernel profile's ordered checks decide it. Nothing here re-states a
kernel rule; it only adds what the verdict cannot say by itself: which scheme
the header uses, how many bytes the signature covers, and the ctx fields a
``-L`` loader reads that no signature covers (docs/lskel.md §6 item 5).

``bpfsign verify`` imports this on its start-up path: plain classes only.
"""

from __future__ import annotations

from ..errors import InputError
from . import profiles as _profiles
from . import rules as _rules

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..crypto.trust import TrustStore
    from ..skel.skeleton import Skeleton
    from .profiles import Profile

__all__ = ["SkeletonVerdict", "check_skeleton", "verify_skeleton"]


class SkeletonVerdict:
    """What ``kernel`` would do with the header's signed load, with every check that ran."""

    __slots__ = ("kernel", "notes", "payload_size", "scheme", "verdict")

    def __init__(self, kernel: Profile, scheme: str, payload_size: int,
                 notes: tuple[str, ...], verdict: _rules.Verdict) -> None:  # fmt: skip
        self.kernel = kernel
        self.scheme = scheme  # "loadtime" or "inloader": what the header's loader is
        self.payload_size = payload_size  # bytes the signature covers
        self.notes = notes  # true but not refusals: what the signature does not cover
        self.verdict = verdict  # the ordered checks (kernel/rules.py)

    @property
    def loads(self) -> bool:
        return self.verdict.loads

    @property
    def errno(self) -> int | None:
        return self.verdict.errno

    @property
    def signer(self) -> Any:
        """The verified signer (bpfsign.crypto.verify.VerifiedSignature), None if not reached."""
        return self.verdict.signer

    def __repr__(self) -> str:
        outcome = "loads" if self.loads else f"refused errno {self.errno}"
        return f"SkeletonVerdict({self.scheme}, kernel {self.kernel.name}: {outcome})"


def check_skeleton(skel: Skeleton, trust: TrustStore, *, kernel: str | Profile = _profiles.DEFAULT,
                   keyring_id: int = -3) -> SkeletonVerdict:  # fmt: skip
    """The verdict of ``kernel`` (a profile or its name) on the header's signed load.

    Never raises for a refusal: the verdict says which check decided, with the
    kernel's errno and log line. Raises InputError for a header that carries no
    signature, since there is no signed load to judge.
    """
    if skel.signature is None:
        raise InputError(
            "not signed: the header has no opts_sig; sign it with `bpfsign sign`", path=skel.path
        )
    from ..skel import scheme as _scheme

    profile = _profiles.get(kernel) if isinstance(kernel, str) else kernel
    audit = _scheme.audit(skel)
    load = _rules.skeleton_load(skel, keyring_id=keyring_id, audit=audit)
    verdict = _rules.evaluate(load, profile, trust)
    notes: tuple[str, ...] = ()
    if audit.scheme == "loadtime" and audit.mode == "unsigned":
        notes = (_scheme.override_warning(audit),)
    payload_size = len(skel.insns) + (len(skel.data) if audit.scheme == "loadtime" else 0)
    return SkeletonVerdict(profile, audit.scheme, payload_size, notes, verdict)


def verify_skeleton(skel: Skeleton, trust: TrustStore, *, kernel: str | Profile = _profiles.DEFAULT,
                    keyring_id: int = -3) -> SkeletonVerdict:  # fmt: skip
    """Like :func:`check_skeleton`, but a refusal raises VerificationError with the kernel's errno.

    The error carries the kernel's log line (``.log``), the deciding check's id
    (``.check``) and what to do about it (``.hint``).
    """
    result = check_skeleton(skel, trust, kernel=kernel, keyring_id=keyring_id)
    if not result.loads:
        raise result.verdict.error()
    return result
