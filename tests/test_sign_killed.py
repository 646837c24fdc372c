"""Signing in place survives SIGKILL at any moment: the header is the old one or a whole new one.

The signer is killed at random points (seeded, the seed is printed) across its
whole run. After every kill the file must be byte-identical to the original or
a complete signed header that verifies; temp files a killed run left behind
are removed by the next signing of the same file.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bpfsign
from bpfsign import skeleton
from bpfsign.kernel import offline

FIXTURES = Path(__file__).parent / "fixtures"
HEADER = FIXTURES / "skel" / "counter.lskel.h"
KEY = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.key.pem"
CERT = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem"
KILLS = 200


def _state(path: Path, original: bytes, trust: bpfsign.TrustStore) -> str:
    data = path.read_bytes()
    if data == original:
        return "original"
    skel = skeleton.parse(data.decode("utf-8", "surrogateescape"), path=str(path))
    assert skel.signature is not None, "a changed header must be a signed one"
    offline.verify_skeleton(skel, trust)  # raises if it is not whole
    return "signed"


@pytest.mark.slow
def test_sigkill_during_in_place_signing_never_loses_the_header(tmp_path: Path) -> None:
    key = tmp_path / "signer.key"
    shutil.copyfile(KEY, key)
    key.chmod(0o600)
    header = tmp_path / "counter.lskel.h"
    original = HEADER.read_bytes()
    trust = bpfsign.TrustStore()
    trust.add_path(CERT)
    cmd = [
        sys.executable,
        "-m",
        "bpfsign",
        "sign",
        "--key",
        str(key),
        "--cert",
        str(CERT),
        str(header),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    durations = []
    for _ in range(3):
        header.write_bytes(original)
        start = time.monotonic()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        durations.append(time.monotonic() - start)
    typical = statistics.median(durations)

    seed = random.randrange(1 << 32)
    print(f"seed {seed}, a whole signing takes {typical * 1000:.0f} ms")
    rng = random.Random(seed)
    seen = {"original": 0, "signed": 0}
    for _ in range(KILLS):
        header.write_bytes(original)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(rng.uniform(0, typical * 1.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen[_state(header, original, trust)] += 1
    print(f"after {KILLS} kills: {seen}")
    assert sum(seen.values()) == KILLS
    assert seen["original"] and seen["signed"], "kills must land both before and after the rename"

    header.write_bytes(original)
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    assert _state(header, original, trust) == "signed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter.lskel.h", "signer.key"]
