"""bpfsign: sign, verify, inspect and load signed BPF light skeletons.

The public API is re-exported here lazily, so that ``import bpfsign`` (and the
CLI start-up) stays cheap: a name is imported from its module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import Error, InputError, KernelError, UnsupportedFeature, VerificationError

__version__ = "0.1.0"

# name -> module that defines it; filled in as layers land.
_LAZY: dict[str, str] = {
    "Signer": "bpfsign.signer",
}

__all__ = [
    "Error",
    "InputError",
    "KernelError",
    "UnsupportedFeature",
    "VerificationError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bpfsign' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
