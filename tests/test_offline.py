"""kernel/offline.py: the library's verify_skeleton is the rules engine's verdict, nothing else."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest

import bpfsign
from bpfsign.crypto.keys import FileSigner
from bpfsign.crypto.trust import TrustStore
from bpfsign.errors import InputError, VerificationError
from bpfsign.kernel import offline, profiles, rules
from bpfsign.skel import scheme, skeleton

FIXTURES = Path(__file__).parent / "fixtures"
KEY = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.key.pem"
CERT = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem"
SIGNED_618 = FIXTURES / "skel" / "counter.signed.lskel.h"  # bpftool 7.8 -S: the 6.18 scheme
UNSIGNED = FIXTURES / "skel" / "counter.v71.lskel.h"


@pytest.fixture(scope="module")
def trust() -> TrustStore:
    store = TrustStore()
    store.add_path(str(CERT))
    return store


@pytest.fixture(scope="module")
def loadtime_text() -> str:
    text, _ = scheme.sign_skeleton(
        skeleton.load(SIGNED_618), FileSigner.from_files(str(KEY), str(CERT))
    )
    return text


def test_the_package_exports_the_engines_verdict() -> None:
    assert bpfsign.verify_skeleton is offline.verify_skeleton
    assert bpfsign.check_skeleton is offline.check_skeleton
    assert not hasattr(scheme, "verify_skeleton")  # the skel layer decides no verdicts


@pytest.mark.parametrize("kernel", ["7.3", "6.18", "6.18-nosig", "7.x-bpf-keyring"])
def test_the_verdict_is_the_rules_engines_for_every_profile(
    kernel: str, trust: TrustStore, loadtime_text: str
) -> None:
    for skel in (skeleton.load(SIGNED_618), skeleton.parse(loadtime_text)):
        profile = profiles.get(kernel)
        result = offline.check_skeleton(skel, trust, kernel=profile)
        engine = rules.evaluate(rules.skeleton_load(skel), profile, trust)
        assert [s.as_dict() for s in result.verdict.steps] == [s.as_dict() for s in engine.steps]
        assert (result.loads, result.errno) == (engine.loads, engine.errno)
        assert result.kernel is profile
        by_name = offline.check_skeleton(skel, trust, kernel=kernel)
        assert (by_name.loads, by_name.errno) == (result.loads, result.errno)


def test_each_scheme_loads_on_its_kernel_only(trust: TrustStore, loadtime_text: str) -> None:
    old, new = skeleton.load(SIGNED_618), skeleton.parse(loadtime_text)
    assert offline.verify_skeleton(old, trust, kernel="6.18").scheme == "inloader"
    ok = offline.verify_skeleton(new, trust)  # default: 7.3, the load-time scheme
    assert (ok.kernel.name, ok.scheme, ok.loads, ok.errno) == ("7.3", "loadtime", True, None)
    assert ok.payload_size == len(new.insns) + len(new.data)
    assert ok.signer.signer_subject == "CN=bpfsign TEST-ONLY fixture key (do not trust)"
    assert repr(ok) == "SkeletonVerdict(loadtime, kernel 7.3: loads)"
    refused = offline.check_skeleton(old, trust)
    assert repr(refused) == "SkeletonVerdict(inloader, kernel 7.3: refused errno 13)"
    with pytest.raises(VerificationError) as exc:
        offline.verify_skeleton(old, trust)
    assert exc.value.errno == errno.EACCES
    assert exc.value.log == refused.verdict.log == rules.RULES["bind_after_signature"].log
    assert exc.value.check == "bind_after_signature"  # type: ignore[attr-defined]


def test_a_kernel_without_signature_support(trust: TrustStore, loadtime_text: str) -> None:
    with pytest.raises(VerificationError) as exc:
        offline.verify_skeleton(skeleton.parse(loadtime_text), trust, kernel="6.18-nosig")
    assert exc.value.errno == errno.EOPNOTSUPP
    assert exc.value.reason == (
        "signature support: a signed load on a kernel without CONFIG_SYSTEM_DATA_VERIFICATION"
    )
    assert (exc.value.log, exc.value.check) == ("", "verification_support")  # type: ignore[attr-defined]


def test_bad_arguments_are_input_errors(trust: TrustStore) -> None:
    with pytest.raises(InputError) as exc:
        offline.check_skeleton(skeleton.load(UNSIGNED), trust)
    assert exc.value.reason == "not signed: the header has no opts_sig; sign it with `bpfsign sign`"
    assert exc.value.path == str(UNSIGNED)
    with pytest.raises(InputError) as exc:
        offline.check_skeleton(skeleton.load(SIGNED_618), trust, kernel="5.4")
    assert exc.value.reason.startswith("unknown kernel profile '5.4': use one of 7.3, 6.18")


def test_the_cli_reports_the_same_verdict(trust: TrustStore) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bpfsign", "verify", "--json", "--kernel", "7.3", "--trust",
         str(CERT), str(SIGNED_618)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    (rec,) = json.loads(proc.stdout)
    result = offline.check_skeleton(skeleton.load(SIGNED_618), trust)
    assert proc.returncode == 1, proc.stderr
    assert (rec["ok"], rec["errno"], rec["log"]) == (False, result.errno, result.verdict.log)
    assert rec["payload_bytes"] == result.payload_size and rec["scheme"] == result.scheme
