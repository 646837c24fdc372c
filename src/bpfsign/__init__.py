"""bpfsign: sign, verify, inspect and load signed BPF light skeletons.

The public API is re-exported here lazily, so that ``import bpfsign`` (and the
CLI start-up) stays cheap: a name is imported from its module on first use.
"""

from __future__ import annotations

from .errors import Error, InputError, KernelError, UnsupportedFeature, VerificationError

__version__ = "0.1.0"

# name -> module that defines it; filled in as layers land.
_LAZY: dict[str, str] = {
    "Signer": "bpfsign.signer",
    **dict.fromkeys(("build_signed_data", "parse_signed_data", "digest_info"), "bpfsign.cms"),
    **dict.fromkeys(("Certificate", "load_certificates"), "bpfsign.x509"),
    "TrustStore": "bpfsign.trust",
    "KernelModel": "bpfsign.backend.model",
    **dict.fromkeys(("Loader", "LoadedSkeleton", "load_skeleton"), "bpfsign.loader"),
    **dict.fromkeys(("verify_many", "VerifiedSignature"), "bpfsign.verify"),
    "FileSigner": "bpfsign.keys",
    "Pkcs11Signer": "bpfsign.pkcs11",
    **dict.fromkeys(("Skeleton", "MapSpec", "ProgSpec"), "bpfsign.skeleton"),
    **dict.fromkeys(("Audit", "audit", "convert_to_loadtime", "sign_skeleton", "verify_skeleton"), "bpfsign.scheme"),
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


TYPE_CHECKING = False  # typing costs milliseconds of start-up; mypy reads this as usual
if TYPE_CHECKING:
    from typing import Any


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bpfsign' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
