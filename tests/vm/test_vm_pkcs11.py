"""A light skeleton signed through a PKCS#11 token (SoftHSM2), loaded by the 7.x guest kernel.

The token lives in a fresh directory under the guest's /tmp (a tmpfs: the host
root is shared read-only), its keys are made inside it by ``bpfsign keygen
--pkcs11`` (RSA-2048 and ECDSA P-256, certificates signed by the token), the
certificates go into the session keyring, and ``bpfsign sign --key pkcs11:...``
signs the fixture header with the certificate read back from the token. The
kernel accepts the load and the program runs; a token key whose certificate is
not in the keyring is refused with ENOKEY, as the kernel refuses any unknown key.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from _vmcase import GuestKeys

from _softhsm import Token, softhsm_missing, softhsm_token

pytestmark = pytest.mark.vm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HEADER = FIXTURES / "skel" / "sockfilter.lskel.h"  # bpftool 7.8 -L: loads and filters
UDP_FRAME = (
    bytes(6)
    + bytes.fromhex("020000000001")
    + b"\x08\x00"
    + bytes.fromhex("45000020000040004011")
    + bytes(2)
    + bytes([10, 0, 0, 1, 10, 0, 0, 2])
    + bytes.fromhex("04d21611000c0000")
    + b"ping"
)  # fmt: skip  (as in test_vm_skeletons: UDP to port 0x1611, counted under 17)


@pytest.fixture(scope="module")
def token(guest_keys: GuestKeys, tmp_path_factory: pytest.TempPathFactory) -> Token:
    missing = softhsm_missing()
    if missing is not None:
        pytest.fail(f"the guest shares the host's root, which lacks SoftHSM2: {missing}")
    tok = softhsm_token(tmp_path_factory.mktemp("softhsm"), "bpfsign-vm")
    from bpfsign.crypto import pkcs11
    from bpfsign.kernel import keyring

    for label, kind in (("vm-rsa", "rsa"), ("vm-p256", "ec"), ("vm-outsider", "ec")):
        made = pkcs11.generate(tok.uri(label), kind, bits=2048, subject=f"bpfsign vm {label}")  # type: ignore[arg-type]
        # a description of its own: add_key() with another key's description replaces that key
        if label != "vm-outsider":  # its certificate stays out of the keyring
            keyring.add_certificate(
                made.cert_der, keyring="session", description=f"bpfsign-pkcs11-{label}"
            )
    return tok


def _sign_with_token(token: Token, label: str, out: Path) -> None:
    from bpfsign.cli import main

    assert main(["sign", "--key", token.uri(label), "-o", str(out), str(HEADER)]) == 0


@pytest.mark.parametrize("label", ["vm-rsa", "vm-p256"])
def test_token_signed_skeleton_loads_and_runs(token: Token, label: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from bpfsign.kernel import loader
    from bpfsign.kernel.backend import default_backend
    from bpfsign.skel import skeleton

    out = tmp_path / f"{label}.lskel.h"
    _sign_with_token(token, label, out)
    printed = capsys.readouterr()
    assert "4711" not in printed.out + printed.err  # the PIN never shows
    signed = skeleton.load(out)
    assert signed.signature is not None
    loaded = loader.load(signed, keyring_id=-3)
    try:
        progs = dict(loaded.progs)
        assert set(progs) == {p.name for p in signed.progs}
        for fd in progs.values():
            assert fd > 0 and os.path.exists(f"/proc/self/fd/{fd}")
        assert default_backend().test_run_packet(progs["count_proto"], UDP_FRAME) == 0xFFFF
    finally:
        loaded.close()


def test_token_key_outside_the_keyring_is_refused(token: Token, tmp_path: Path) -> None:
    from bpfsign.errors import KernelError
    from bpfsign.kernel import loader
    from bpfsign.skel import skeleton

    out = tmp_path / "outsider.lskel.h"
    _sign_with_token(token, "vm-outsider", out)
    with pytest.raises(KernelError) as info:
        loader.load(skeleton.load(out), keyring_id=-3)
    assert info.value.errno == errno.ENOKEY
