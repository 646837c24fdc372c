"""The real-world corpus on the 7.3 guest: bpfsign's load against libbpf's skel_internal.h.

For every corpus header (tests/corpus/skel/): bpfsign's load succeeds exactly where
the C reference (tests/corpus/refload.c, compiled on the host by
``python tests/corpus/refload.py --build-all``, which tests/test_vm.py runs before
booting) succeeds, creates the same maps and programs, and where both fail the errno
is the same. Signed headers are loaded signed, with the TEST-ONLY fixture cert in the
session keyring (the ``guest_keys`` fixture). Triggered programs are checked against
the selftests' expected results. Only bpfsign's public API is used.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
import checks
import refload

pytestmark = pytest.mark.vm

HEADERS = checks.HEADERS


@pytest.mark.parametrize("h", HEADERS, ids=[h.name for h in HEADERS])
def test_guest_load_parity_with_skel_internal(h: Path, guest_keys: object) -> None:
    r = checks.load_pair(h, build=False)
    print(
        "CORPUS-GUEST",
        h.name,
        "C",
        "ok" if r["c"]["ok"] else f"{r['c']['step']} errno {r['c']['errno']}",
        "| bpfsign",
        "ok" if r["bpfsign"]["ok"] else f"{r['bpfsign']['error']} errno {r['bpfsign']['errno']}",
    )
    assert r["diffs"] == [], r


@pytest.mark.parametrize(
    ("prog", "h"), checks.TRIGGER_CASES, ids=[h.name for _, h in checks.TRIGGER_CASES]
)
def test_guest_trigger(prog: str, h: Path, guest_keys: object) -> None:
    c = refload.run(h, build=False)
    if not c["ok"]:
        pytest.skip(
            f"skel_internal.h cannot load {h.name} on this kernel either "
            f"({c['step']}, errno {c['errno']}); load parity covers it"
        )
    checks.TRIGGERS[prog](h)
