"""Kernel profiles: which kernel the rules engine answers as.

A profile is the handful of facts in which the kernels we know differ: where
the signature is checked (at entry over the insns: the 6.18 scheme; inside
the verifier over insns ‖ metadata maps: the load-time scheme, docs/kernel.md
§6.1/§6.2), whether signature verification is built in at all (§13 row 1),
the ``struct bpf_map`` layout a 6.18-style loader reads (§8.1), and which
keyrings ``keyring_id`` can name (§5). Each profile says where its facts come
from, and a profile that nobody measured says so in every verdict.

Plain classes, not dataclasses: ``bpfsign verify`` imports this on its
start-up path (docs/cms.md: the CLI is benchmarked against one ``openssl cms
-verify`` run, and ``dataclasses``/``typing`` cost several ms).
"""

from __future__ import annotations

__all__ = ["DEFAULT", "PROFILES", "Profile", "get", "names"]

#: KEY_SPEC_BPF_KEYRING in the upstream ``.bpf`` keyring series (docs/kernel.md §5).
KEY_SPEC_BPF_KEYRING = -9


class Profile:
    """One kernel's answers to the questions the rules engine asks."""

    __slots__ = (
        "bpf_keyring",
        "description",
        "empty_signature_einval",
        "keyring_log",
        "layout",
        "name",
        "provenance",
        "scheme",
        "verifies",
    )

    def __init__(
        self,
        name: str,
        *,
        scheme: str,
        verifies: bool,
        layout: str,
        keyring_log: bool,
        empty_signature_einval: bool,
        bpf_keyring: bool,
        description: str,
        provenance: str,
    ) -> None:
        self.name = name
        #: "loadtime" (signature inside bpf_check over insns ‖ maps) or "inloader" (at entry)
        self.scheme = scheme
        #: CONFIG_SYSTEM_DATA_VERIFICATION: False means every signed load is EOPNOTSUPP
        self.verifies = verifies
        #: struct bpf_map at offset 32: "7.3" (the ops pointer) or "6.18" (u32 excl)
        self.layout = layout
        #: a failed keyring lookup writes "cannot resolve signing keyring ..." to the log
        self.keyring_log = keyring_log
        #: a non-NULL signature of size 0 is EINVAL (7.3.4) or reaches the stub (6.18.44)
        self.empty_signature_einval = empty_signature_einval
        #: keyring_id -9 names the ``.bpf`` keyring
        self.bpf_keyring = bpf_keyring
        self.description = description
        #: "measured ..." or "from upstream documentation, unmeasured"
        self.provenance = provenance

    @property
    def measured(self) -> bool:
        return self.provenance.startswith("measured")

    def __repr__(self) -> str:
        return f"<Profile {self.name}>"

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name, "scheme": self.scheme, "verifies_signatures": self.verifies,
            "bpf_map_layout": self.layout, "bpf_keyring": self.bpf_keyring,
            "description": self.description, "provenance": self.provenance,
        }  # fmt: skip


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "7.3",
            scheme="loadtime",
            verifies=True,
            layout="7.3",
            keyring_log=True,
            empty_signature_einval=True,
            bpf_keyring=False,
            description="Linux 7.3 (Debian 7.3.4): load-time signatures over insns and "
            "frozen exclusive metadata maps; no .bpf keyring",
            provenance="measured on Debian 7.3.4 (tests/vm)",
        ),
        Profile(
            "6.18",
            scheme="inloader",
            verifies=True,
            layout="6.18",
            keyring_log=False,
            empty_signature_einval=False,
            bpf_keyring=False,
            description="Linux 6.18 with CONFIG_SYSTEM_DATA_VERIFICATION: the signature covers "
            "the insns at entry; the loader checks its metadata itself",
            provenance="measured on 6.18.44 (map, layout and loader rules); the PKCS#7 check "
            "at entry from source",
        ),
        Profile(
            "6.18-nosig",
            scheme="inloader",
            verifies=False,
            layout="6.18",
            keyring_log=False,
            empty_signature_einval=False,
            bpf_keyring=False,
            description="Linux 6.18 without CONFIG_SYSTEM_DATA_VERIFICATION (like the dev "
            "host): every signed load fails with EOPNOTSUPP",
            provenance="measured on 6.18.44",
        ),
        Profile(
            "7.x-bpf-keyring",
            scheme="loadtime",
            verifies=True,
            layout="7.3",
            keyring_log=True,
            empty_signature_einval=True,
            bpf_keyring=True,
            description="Linux 7.x with the upstream .bpf keyring: keyring_id -9 "
            "(KEY_SPEC_BPF_KEYRING) names it; otherwise as 7.3",
            provenance="from upstream documentation, unmeasured (Debian 7.3.4 has no .bpf keyring)",
        ),
    )
}
DEFAULT = "7.3"


def names() -> tuple[str, ...]:
    """Profile names a user may pass, ``auto`` included."""
    return (*PROFILES, "auto")


def get(name: str) -> Profile:
    """The profile called ``name``; ``auto`` probes the running kernel (kernel/probes.py)."""
    if name == "auto":
        return running()
    profile = PROFILES.get(name)
    if profile is None:
        from ..errors import InputError

        raise InputError(f"unknown kernel profile {name!r}: use one of {', '.join(names())}")
    return profile


def running() -> Profile:
    """The profile of the running kernel, from its feature probes (docs/kernel.md §14).

    No signature support: ``6.18-nosig``; verification inside the verifier
    (BTF has ``bpf_sig_verdict``): ``7.3``; verification at entry: ``6.18``.
    """
    from . import probes

    sig = probes.signed_prog_load()
    if sig.supported is False:
        return PROFILES["6.18-nosig"]
    if probes.loadtime_verification().supported is False:
        return PROFILES["6.18"]
    return PROFILES["7.3"]
