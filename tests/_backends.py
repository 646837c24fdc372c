"""Run a test module under both signature backends (libcrypto via ctypes, and pyca).

    from _backends import crypto_backend  # noqa: F401  (autouse, module-scoped)

Module-scoped so hypothesis tests may use it; libcrypto is skipped (not
failed) only where the system has no libcrypto.so.3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bpfsign.crypto import _libcrypto

BACKENDS = [
    pytest.param(
        "libcrypto",
        marks=pytest.mark.skipif(
            _libcrypto.load() is None, reason=f"{_libcrypto.SONAME} cannot be loaded"
        ),
    ),
    "pyca",
]


@contextmanager
def using(name: str) -> Iterator[None]:
    """Signatures and hashes by ``name`` ("libcrypto" or "pyca") inside the block."""
    saved = list(_libcrypto._choice)
    _libcrypto._choice[:] = [name]
    try:
        yield
    finally:
        _libcrypto._choice[:] = saved


@pytest.fixture(scope="module", params=BACKENDS, autouse=True)
def crypto_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    with using(name):
        yield name
