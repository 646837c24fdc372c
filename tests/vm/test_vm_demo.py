"""``bpfsign demo`` on the 7.x guest: its load step loads the example skeleton SIGNED.

The steps run in-process, as the CLI runs them. The throwaway certificate goes
only into the demo's own fresh keyring, which the step removes again, so the
same signed skeleton must then be refused with ENOKEY from the session keyring
(which holds the suite's certs, not the demo's): the signature was really checked.
"""

from __future__ import annotations

import dataclasses
import errno
from pathlib import Path
from typing import Any

import pytest
from _vmcase import GuestKeys, check

pytestmark = pytest.mark.vm


def _offline(skel: Any, trust: Any, keyring_id: int) -> int | None:
    from bpfsign.errors import VerificationError
    from bpfsign.kernel import offline

    try:
        offline.verify_skeleton(skel, trust, kernel="7.3", keyring_id=keyring_id)
    except VerificationError as exc:
        return exc.errno
    return None


def _kernel(skel: Any, keyring_id: int) -> tuple[int | None, str]:
    from bpfsign.errors import KernelError
    from bpfsign.kernel import loader

    try:
        loader.load(skel, keyring_id=keyring_id).close()
    except KernelError as exc:
        return exc.errno, exc.log.strip()
    return None, ""


def _model(skel: Any, trust: Any, keyring_id: int) -> tuple[int | None, str]:
    """The kernel model's verdict on the same load (bpfsign.kernel.loader over KernelModel("7.3"))."""
    from bpfsign.errors import KernelError
    from bpfsign.kernel import loader
    from bpfsign.kernel.model import KernelModel

    model = KernelModel("7.3", trust)
    ld = loader.Loader(skel, keyring_id=keyring_id, backend=model)
    try:
        model.loader_verdict(ld.request)
    except KernelError as exc:
        return exc.errno, exc.log.strip()
    return None, ""


def test_demo_loads_the_signed_example_skeleton(
    tmp_path: Path, guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    from _vmoffline import trust_store

    from bpfsign.cli import demo
    from bpfsign.kernel import keyring, probes

    assert probes.signed_prog_load().supported is True, probes.signed_prog_load().detail
    assert probes.loadtime_verification().supported is True, probes.loadtime_verification().detail
    ctx = demo.DemoContext(workdir=tmp_path)
    lines = [f"{step.title}: {step.run(ctx)}" for step in demo.STEPS]
    print("\n".join(lines))
    assert [line.split(":", 1)[0] for line in lines] == [s.title for s in demo.STEPS]
    load_line = lines[-1]
    assert load_line.startswith(
        "load: loaded example.loadtime.lskel.h SIGNED: the kernel verified its loadtime "
        f"signature with the throwaway certificate in a fresh keyring '{demo.DEMO_KEYRING}' ("
    ), load_line
    assert "removed again); maps proto_counts (id " in load_line, load_line
    assert "; programs count_proto (id " in load_line and load_line.endswith("; released")
    loaded = ctx.extra["load"]
    assert loaded["signed"] is True and loaded["scheme"] == "loadtime"
    assert loaded["keyring"] not in (guest_keys.session_serial, -3)
    assert [(p["name"], p["type"]) for p in loaded["progs"]] == [
        ("count_proto", 1)
    ]  # SOCKET_FILTER
    assert [m["name"] for m in loaded["maps"]] == ["proto_counts", "rodata"]

    # The demo's keyring is gone and the session keyring lacks the throwaway cert: ENOKEY,
    # so the demo's load succeeded because the kernel checked the signature against it.
    signed = ctx.extra["signed_skeleton"]
    store, _ = trust_store(guest_keys)
    check(agreement, "demo example, throwaway cert not in keyring -3", _kernel(signed, -3),
          errno.ENOKEY, None, model=_model(signed, store, -3), offline=_offline(signed, store, -3))  # fmt: skip

    # With the throwaway cert in the session keyring: the demo's skeleton loads, one
    # flipped data byte gets EKEYREJECTED, as the demo's offline tamper step said.
    added = keyring.add_certificate(ctx.cert_path.read_bytes() if ctx.cert_path else b"")
    try:
        check(agreement, "demo example, throwaway cert in keyring -3", _kernel(signed, -3),
              None, None, model=_model(signed, ctx.trust, -3), offline=_offline(signed, ctx.trust, -3))  # fmt: skip
        evil = bytearray(signed.data)
        evil[len(evil) // 2] ^= 0x01
        tampered = dataclasses.replace(signed, data=bytes(evil))
        check(agreement, "demo example, one data byte flipped", _kernel(tampered, -3),
              errno.EKEYREJECTED, "signature verification failed: -129",
              model=_model(tampered, ctx.trust, -3), offline=_offline(tampered, ctx.trust, -3))  # fmt: skip
    finally:
        keyring.remove_key(added.serial, keyring=added.keyring)
