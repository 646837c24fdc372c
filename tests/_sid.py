"""The pinned Debian sid packages (libbpf 1.7 headers, 7.2 UAPI) that some tests compile against.

``tests/fixtures/generate.sh --fetch-only`` downloads them once into the fixture
cache, checks every .deb against its pinned SHA-256 and unpacks it. The tests ask
for the ``sid_root`` fixture, which runs that script, so ``python -m pytest`` runs
them on a fresh clone with no set-up step (and the same way CI does).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def sid_root() -> Path:
    """Where the pinned packages are unpacked (``<cache>/root/<package>/...``)."""
    proc = subprocess.run(
        ["bash", str(FIXTURES / "generate.sh"), "--fetch-only"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"generate.sh --fetch-only failed ({proc.returncode}):\n{proc.stderr.strip()}")
    cache = os.environ.get("BPFSIGN_FIXTURE_CACHE") or str(FIXTURES / ".cache")
    return Path(cache) / "root"
