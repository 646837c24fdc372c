"""bpfsign: sign, verify, inspect and load signed BPF light skeletons.

The public API is re-exported here lazily, so that ``import bpfsign`` (and the
CLI start-up) stays cheap: a name is imported from its module on first use.
"""

from .errors import Error, InputError, KernelError, UnsupportedFeature, VerificationError

__version__ = "0.1.0"

# name -> module that defines it; filled in as layers land.
_LAZY: dict[str, str] = {
    "Signer": "bpfsign.crypto.signer",
    **dict.fromkeys(
        ("build_signed_data", "parse_signed_data", "digest_info"), "bpfsign.crypto.cms"
    ),
    **dict.fromkeys(("Certificate", "load_certificates"), "bpfsign.crypto.x509"),
    "TrustStore": "bpfsign.crypto.trust",
    "KernelModel": "bpfsign.kernel.model",
    **dict.fromkeys(("Loader", "LoadedSkeleton", "load_skeleton"), "bpfsign.kernel.loader"),
    **dict.fromkeys(("verify_many", "VerifiedSignature"), "bpfsign.crypto.verify"),
    "FileSigner": "bpfsign.crypto.keys",
    "Pkcs11Signer": "bpfsign.crypto.pkcs11",
    **dict.fromkeys(("Skeleton", "MapSpec", "ProgSpec"), "bpfsign.skel.skeleton"),
    **dict.fromkeys(
        ("Audit", "audit", "convert_to_loadtime", "sign_skeleton"), "bpfsign.skel.scheme"
    ),
    **dict.fromkeys(
        ("SkeletonVerdict", "check_skeleton", "verify_skeleton"), "bpfsign.kernel.offline"
    ),
}
# name -> module exported as a whole (``from bpfsign import scheme, skeleton``)
_LAZY_MODULES: dict[str, str] = {
    "scheme": "bpfsign.skel.scheme",
    "skeleton": "bpfsign.skel.skeleton",
}

__all__ = [
    "Error",
    "InputError",
    "KernelError",
    "UnsupportedFeature",
    "VerificationError",
    "__version__",
    *_LAZY,
    *_LAZY_MODULES,
]


TYPE_CHECKING = False  # typing costs milliseconds of start-up; mypy reads this as usual
if TYPE_CHECKING:
    from typing import Any


def __getattr__(name: str) -> "Any":
    import importlib

    whole = _LAZY_MODULES.get(name)
    if whole is not None:
        value: Any = importlib.import_module(whole)
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bpfsign' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
