"""Layer 1, the cryptography: bytes in, verdicts and signatures out.

Owns the DER/BER codec with the kernel's decoder rules, the OIDs, the X.509
reader, CMS SignedData build and parse (bpftool's shape), keys and signers, the
trust store and the offline signature check (system libcrypto through ctypes on
the hot path, pyca/cryptography otherwise). It may import only
:mod:`bpfsign.errors`, :mod:`bpfsign._fileio` and itself: it knows nothing of
BPF, skeletons or the kernel.
"""
