"""Guest-side plumbing: a fresh session keyring with the test certs, /dev/kmsg per
case, and the kernel | model | offline agreement table printed at the end.

These tests run only inside the 7.x guest (tests/test_vm.py boots it); on the
host tests/conftest.py deselects them, so this file must import cheaply.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _vmcase import CaseKmsg, GuestKeys, Kmsg

_ROWS = pytest.StashKey[list[tuple[str, str, str, str]]]()


#: Which generated keys go into the session keyring ("wrong" stays out).
IN_KEYRING = ("rsa", "p256", "p384", "fixture")


@pytest.fixture(scope="session")
def guest_keys(tmp_path_factory: pytest.TempPathFactory) -> GuestKeys:
    from bpfsign.crypto import keys
    from bpfsign.kernel import keyring

    serial = keyring.join_session_keyring()  # a fresh session keyring: only our certs
    assert serial == keyring.resolve_keyring("session")
    pairs = {
        "rsa": keys.generate("rsa", bits=2048, subject="bpfsign vm rsa"),
        "wrong": keys.generate("rsa", bits=2048, subject="bpfsign vm wrong"),
        "p256": keys.generate("ec", curve="P-256", subject="bpfsign vm p256"),
        "p384": keys.generate("ec", curve="P-384", subject="bpfsign vm p384"),
    }
    signers = {n: keys.FileSigner(p.key, p.cert_der) for n, p in pairs.items()}
    # the committed fixture key: bpftool -S headers in tests/fixtures/skel are signed with it
    fixture_keys = Path(__file__).resolve().parents[1] / "fixtures" / "keys"
    signers["fixture"] = keys.FileSigner.from_files(
        fixture_keys / "TEST-ONLY-lskel-signing.key.pem",
        fixture_keys / "TEST-ONLY-lskel-signing.cert.pem",
    )
    gk = GuestKeys(serial, signers, pairs, workdir=tmp_path_factory.mktemp("pki"))
    for name in IN_KEYRING:
        added = keyring.add_certificate(
            signers[name].certificate, keyring="session", description=f"bpfsign-vm-{name}"
        )
        assert added.keyring == serial, (added, serial)
        gk.key_serials[name] = added.serial
    return gk


@pytest.fixture(scope="session")
def _kmsg() -> Iterator[Kmsg]:
    k = Kmsg()
    yield k
    k.close()


@pytest.fixture(autouse=True)
def kmsg(_kmsg: Kmsg, request: pytest.FixtureRequest) -> Iterator[CaseKmsg]:
    """/dev/kmsg drained per case; the lines are printed and attached to the report."""
    _kmsg.drain()
    case = CaseKmsg(_kmsg)
    yield case
    lines = case.read()
    if lines:
        print("kernel log:\n  " + "\n  ".join(lines))
        request.node.user_properties.append(("kmsg", lines))


@pytest.fixture(scope="session")
def agreement(request: pytest.FixtureRequest) -> list[tuple[str, str, str, str]]:
    """Rows (case, kernel, model, offline) for the table printed in the terminal summary."""
    return request.config.stash.setdefault(_ROWS, [])


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rows = config.stash.get(_ROWS, [])
    if not rows:
        return
    head = ("case", "kernel", "model", "offline")
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(4)]

    def line(cells: tuple[str, ...]) -> str:
        return " | ".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=True))

    tr = terminalreporter
    tr.section("kernel vs kernel model (7.3) vs offline verifier")
    tr.write_line(line(head))
    tr.write_line("-+-".join("-" * w for w in widths))
    for row in rows:
        tr.write_line(line(row))
    model_agree = sum(1 for _, k, m, _o in rows if k == m)
    off_agree = sum(1 for _, k, _m, o in rows if k == o)
    off_na = sum(1 for *_, o in rows if o.startswith("n/a"))
    tr.write_line(
        f"{len(rows)} cases: kernel model agrees on {model_agree}, differs on {len(rows) - model_agree}; "
        f"offline verifier agrees on {off_agree}, n/a on {off_na}, differs on {len(rows) - off_agree - off_na}"
    )
