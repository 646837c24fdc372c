"""The catalogue of raw loads (tests/vm/_catalogue.py) on the 7.3 guest.

Each case runs on the real kernel, on bpfsign's KernelModel("7.3") and through
the rules engine that ``bpfsign verify --kernel 7.3`` and ``bpfsign explain``
use; all three must give the errno and verifier-log line measured here (and,
for the mmap cases, BPF_MAP_FREEZE's errno). The rows join the agreement table.
"""

from __future__ import annotations

import errno
import os

import pytest
from _catalogue import CASES, Case, offline, run, wanted
from _vmcase import GuestKeys, model_backend, outcome
from _vmoffline import trust_store

from bpfsign.kernel import _sys as S
from bpfsign.kernel.backend import default_backend

pytestmark = pytest.mark.vm


def _show(got: list[tuple[int | None, str]]) -> str:
    return "; ".join(outcome(e) for e, _ in got[:-1])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_catalogue_case(
    case: Case, guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    before = len(os.listdir("/proc/self/fd"))
    kernel = run(default_backend(), case, guest_keys.signers)
    model = run(model_backend(guest_keys), case, guest_keys.signers)
    store, _ = trust_store(guest_keys)
    engine = offline(case, store, signers=guest_keys.signers)
    agreement.append((case.name, _show(kernel), _show(model), _show(engine)))
    assert kernel == wanted(case), f"{case.name}: the kernel gave {kernel}"
    assert model == kernel, f"{case.name}: model {model} != kernel {kernel}"
    assert engine == kernel, f"{case.name}: rules engine {engine} != kernel {kernel}"
    assert len(os.listdir("/proc/self/fd")) == before


def test_bpf_keyring_is_absent_on_debian_7_3_4(
    guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    """docs/kernel.md §5: KEY_SPEC_BPF_KEYRING (-9), keyring_unsealed and a ``.bpf`` keyring.

    Debian's 7.3.4 has none of the three, so profile ``7.x-bpf-keyring`` stays marked
    "from upstream documentation, unmeasured" (bpfsign.kernel.profiles).
    """
    from bpfsign.errors import KernelError
    from bpfsign.kernel import profiles

    with pytest.raises(KernelError) as info:
        S.keyctl(S.KEYCTL_GET_KEYRING_ID, profiles.KEY_SPEC_BPF_KEYRING, 0, what="keyring -9")
    assert info.value.errno == errno.EINVAL
    assert not os.path.exists("/sys/module/bpf/parameters/keyring_unsealed")
    with open("/proc/keys") as fh:
        keys = fh.read()
    assert ".builtin_trusted_keys" in keys  # the file lists the system keyrings...
    assert not any(
        line.split()[-2:-1] == [".bpf:"] or " .bpf:" in line for line in keys.splitlines()
    )
    assert not profiles.PROFILES["7.x-bpf-keyring"].measured
    assert "unmeasured" in profiles.PROFILES["7.x-bpf-keyring"].provenance
    print("bpf keyring: KEY_SPEC_BPF_KEYRING -> EINVAL; no keyring_unsealed; no .bpf in /proc/keys")
