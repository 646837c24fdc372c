"""The guest's catalogue of raw loads (tests/vm/_catalogue.py), on the host: the kernel
model and the rules engine must both give the errno and log line measured on 7.3.4 for
every case (100% agreement; the guest suite checks the same cases against the kernel)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "vm"))
import _catalogue as cat

from bpfsign.kernel.model import KernelModel


@pytest.fixture(scope="module")
def signers() -> dict[str, Any]:
    from bpfsign.crypto import keys

    out = {}
    for name in ("rsa", "wrong"):
        pair = keys.generate("rsa", bits=2048, subject=f"bpfsign catalogue {name}")
        out[name] = keys.FileSigner(pair.key, pair.cert_der)
    return out


def _model(signers: dict[str, Any]) -> KernelModel:
    model = KernelModel("7.3")
    model.add_key("asymmetric", None, signers["rsa"].certificate, -3)
    return model


def test_the_catalogue_is_large_and_named_uniquely() -> None:
    names = [c.name for c in cat.CASES]
    assert len(names) == len(set(names))
    assert len(names) >= 50


@pytest.mark.parametrize("case", cat.CASES, ids=[c.name for c in cat.CASES])
def test_model_and_engine_give_the_measured_verdict(
    case: cat.Case, signers: dict[str, Any]
) -> None:
    model = _model(signers)
    want = cat.wanted(case)
    assert cat.run(model, case, signers) == want
    assert model.open_fds == 0
    assert cat.offline(case, model.trust, signers=signers) == want
