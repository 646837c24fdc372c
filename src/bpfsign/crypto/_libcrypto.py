"""Signature checks through the system's OpenSSL libcrypto, bound with ctypes.

Why: a verify process must start in ~1.3x one ``openssl cms -verify``, and
importing pyca's Rust binding alone costs 13-15 ms, more than that whole
budget allows.  ``ctypes`` (~1.3 ms) plus loading ``libcrypto.so.3`` (the
library the openssl baseline and ``hashlib`` use, ~1.2 ms) costs ~3 ms.  Only OpenSSL's EVP verify API is
called: no cryptographic math is done here.

``backend()`` names the rule the verify path follows: libcrypto when it loads
with every symbol, else pyca; ``BPFSIGN_CRYPTO_BACKEND=pyca|libcrypto`` forces
one (tests run the kernel-rule suites under both).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

#: soname tried (``ctypes.util.find_library`` runs ldconfig/gcc: tens of ms)
SONAME = "libcrypto.so.3"
RSA_PKCS1_PADDING = 1
ENV = "BPFSIGN_CRYPTO_BACKEND"

#: [] before the first attempt, then [None] or [(lib, c_char_p, byref, create_string_buffer)]
_loaded: list[Any] = []
_choice: list[str] = []  # the backend, once decided
_digests: dict[str, int] = {}  # hash name -> const EVP_MD * (static in libcrypto)
_keys: dict[bytes, tuple[int, bytes]] = {}  # SPKI DER -> (EVP_PKEY *, b"RSA"|b"EC"|b"")
#: (EVP_PKEY *, EVP_MD *) -> an EVP_PKEY_CTX initialised for verify, idle until popped
_ctxs: dict[tuple[int, int], int] = {}
KEY_CACHE_SIZE = 64
_SIZES = {"sha1": 20, "sha224": 28, "sha256": 32, "sha384": 48, "sha512": 64}


def _bind() -> Any:
    import ctypes

    lib = ctypes.CDLL(SONAME)
    p, i, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    for name, restype, argtypes in (
        ("d2i_PUBKEY", p, [p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]),
        ("EVP_PKEY_free", None, [p]),
        ("EVP_PKEY_is_a", i, [p, ctypes.c_char_p]),
        ("EVP_PKEY_CTX_new", p, [p, p]),
        ("EVP_PKEY_CTX_free", None, [p]),
        ("EVP_PKEY_verify_init", i, [p]),
        ("EVP_PKEY_CTX_set_rsa_padding", i, [p, i]),
        ("EVP_PKEY_CTX_set_signature_md", i, [p, p]),
        ("EVP_get_digestbyname", p, [ctypes.c_char_p]),
        ("EVP_Digest", i, [ctypes.c_char_p, sz, p, p, p, p]),
        ("EVP_PKEY_verify", i, [p, ctypes.c_char_p, sz, ctypes.c_char_p, sz]),
        ("ERR_clear_error", None, []),
    ):
        fn = getattr(lib, name)  # AttributeError: symbol missing
        fn.restype = restype
        fn.argtypes = argtypes
    return lib, ctypes.c_char_p, ctypes.byref, ctypes.create_string_buffer


def load() -> Any:
    """The bound libcrypto, or None when it is missing or lacks a symbol (cached)."""
    if not _loaded:
        try:
            bound = _bind()
        except (OSError, AttributeError, ImportError):
            bound = None
        _loaded.append(bound)
    return _loaded[0]


def backend() -> str:
    """Which library checks signatures (and hashes) here: "libcrypto" or "pyca".

    Decided once per process (the verify path asks per hash and per signature)."""
    if _choice:
        return _choice[0]
    forced = os.environ.get(ENV)
    if forced and forced != "pyca" and forced != "libcrypto":
        raise ValueError(f"{ENV}={forced!r}: expected 'pyca' or 'libcrypto'")
    if forced == "libcrypto" and load() is None:
        raise RuntimeError(f"{ENV}=libcrypto, but {SONAME} cannot be loaded with ctypes")
    if forced == "pyca" or load() is None:
        _choice.append("pyca")
    else:
        _choice.append("libcrypto")
    return _choice[0]


def _digest_md(lib: Any, hash_name: str) -> int | None:
    md = _digests.get(hash_name)
    if md is None:
        md = lib.EVP_get_digestbyname(hash_name.encode())
        if md:
            _digests[hash_name] = md
    return md


def digest(hash_name: str, data: bytes | bytearray | memoryview) -> bytes:
    """``hash_name`` digest of ``data`` by libcrypto's one-shot ``EVP_Digest``.

    Not ``hashlib``: its ``_hashlib`` costs ~2 ms to import even with libcrypto
    already loaded, ~10% of the one-file budget."""
    bound = load()
    if bound is None:
        raise RuntimeError(f"{SONAME} is not available")
    lib, _, _, buffer = bound
    md = _digest_md(lib, hash_name)
    if md is None:
        raise ValueError(f"libcrypto has no digest {hash_name!r}")
    if not isinstance(data, bytes):  # c_char_p takes bytes only (no copy for bytes)
        data = bytes(data)
    out = buffer(64)  # EVP_MAX_MD_SIZE
    if lib.EVP_Digest(data, len(data), out, None, md, None) != 1:
        lib.ERR_clear_error()
        raise RuntimeError(f"EVP_Digest({hash_name}) failed")
    raw: bytes = out.raw
    return raw[: _SIZES[hash_name]]


def verify(spki: bytes, rsa: bool, signature: bytes, digest: bytes, hash_name: str) -> bool:
    """True only if ``signature`` over the precomputed ``digest`` verifies with the
    SubjectPublicKeyInfo DER ``spki``: RSA PKCS#1 v1.5 (``rsa``) or DER ECDSA.

    Every failure (unparsable key, wrong key type, malformed or bad signature)
    is False, as pyca's ``InvalidSignature``/``ValueError`` are on its path.

    Parsed keys and their initialised verify contexts are cached (up to
    ``KEY_CACHE_SIZE`` each, never freed, like pyca key objects cached on
    certificates): OpenSSL 3.0's ``d2i_PUBKEY`` takes ~70 us and a context
    ~4 us, against ~45 us to hash and verify a 64 KiB payload.  Cached keys are
    never evicted, so a pointer another thread uses (ctypes drops the GIL) is
    never freed; a context is popped from the cache while in use, so no two
    threads share one."""
    bound = load()
    if bound is None:
        raise RuntimeError(f"{SONAME} is not available")
    lib, char_p, byref, _ = bound
    signature, digest = bytes(signature), bytes(digest)  # c_char_p takes bytes (no copy)
    md = _digest_md(lib, hash_name)
    ctx = owned = None
    try:
        if md is None:
            return False
        key = _keys.get(spki)
        if key is None:
            owned = lib.d2i_PUBKEY(None, byref(char_p(spki)), len(spki))
            if not owned:
                return False
            kind = next((k for k in (b"RSA", b"EC") if lib.EVP_PKEY_is_a(owned, k) == 1), b"")
            key = (owned, kind)
            if len(_keys) < KEY_CACHE_SIZE:
                _keys[spki], owned = key, None
        pkey, kind = key
        if kind != (b"RSA" if rsa else b"EC"):  # a key of another type
            return False
        ready = (pkey, md)
        ctx = _ctxs.pop(ready, None)  # atomic under the GIL: this call owns it now
        if ctx is None:
            ctx = lib.EVP_PKEY_CTX_new(pkey, None)
            if not ctx or lib.EVP_PKEY_verify_init(ctx) <= 0:
                return False
            if rsa and lib.EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0:
                return False
            if lib.EVP_PKEY_CTX_set_signature_md(ctx, md) <= 0:
                return False
        ok = int(lib.EVP_PKEY_verify(ctx, signature, len(signature), digest, len(digest))) == 1
        if owned is None and len(_ctxs) < KEY_CACHE_SIZE and _ctxs.setdefault(ready, ctx) == ctx:
            ctx = None  # parked for the next call with this key and digest
        return ok
    finally:
        if ctx:
            lib.EVP_PKEY_CTX_free(ctx)
        if owned:
            lib.EVP_PKEY_free(owned)
        lib.ERR_clear_error()
