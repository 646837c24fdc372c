"""The exclusive-map race on the 7.3 guest, and the same race on the kernel model.

CI runs ``BPFSIGN_RACE_ATTEMPTS`` (default 150) loads per variant; every refusal
and every load is counted and printed, and every load is proved to use the signed
map and its signed value (tests/vm/_race.py). Zero loads may run unverified contents.
"""

from __future__ import annotations

import os

import pytest
from _catalogue import READS_VALUE
from _race import SIGNED, VARIANTS, _value, race
from _vmcase import GuestKeys, model_backend

from bpfsign.kernel.backend import default_backend

pytestmark = pytest.mark.vm

ATTEMPTS = int(os.environ.get("BPFSIGN_RACE_ATTEMPTS", "150"))


@pytest.mark.parametrize("variant", VARIANTS)
def test_exclusive_map_race(variant: str, guest_keys: GuestKeys) -> None:
    from bpfsign.crypto import cms

    sig = cms.sign(READS_VALUE + _value(SIGNED), guest_keys.signers["rsa"])
    kernel = race(default_backend(), variant, ATTEMPTS, sig)
    model = race(model_backend(guest_keys), variant, ATTEMPTS, sig)
    print(f"race [{variant}] kernel, {ATTEMPTS} attempts: {dict(kernel)}")
    print(f"race [{variant}] model, {ATTEMPTS} attempts: {dict(model)}")
    loads = kernel["loaded, uses the signed map and value"]
    refusals = sum(n for k, n in kernel.items() if k.startswith("refused"))
    assert loads + refusals == ATTEMPTS
    assert (
        model["loaded, uses the signed map and value"]
        + sum(n for k, n in model.items() if k.startswith("refused"))
        == ATTEMPTS
    )
    allowed = {
        "dup2 unfrozen map": {
            "refused 1: signed program metadata map '__loader.map' must be frozen"
        },
        "dup2 frozen map, other contents": {"refused 129: signature verification failed: -129"},
        "close and recreate": {
            "refused 129: signature verification failed: -129",
            "refused 9: fd {} is not pointing to valid bpf_map or btf",
        },
        "writable mmap before freeze": {
            "refused 1: signed program metadata map '__loader.map' must be frozen",
            "refused 129: signature verification failed: -129",
        },
    }[variant]
    for key in kernel:
        if key.startswith("refused"):
            assert any(key == a or key.startswith(a.split("{}")[0]) for a in allowed), key
