"""Layer 3, the kernel: everything that talks to one, or stands in for one.

Owns the :class:`~bpfsign.kernel.backend.Backend` protocol and its two
implementations (:mod:`~bpfsign.kernel.syscall` over the one ctypes choke point
``_sys``, and the Python :mod:`~bpfsign.kernel.model`), the public numbers
(:mod:`~bpfsign.kernel.consts`), close-once fds (:mod:`~bpfsign.kernel.fd`),
feature probes, BTF, kernel keyrings, the light-skeleton loader and what its
loader program does inside (:mod:`~bpfsign.kernel.loaderprog`). It may import
:mod:`bpfsign.skel`, :mod:`bpfsign.crypto` and the top-level helpers, never
:mod:`bpfsign.cli`; its private modules (``_sys``, ``_sysattrs``) are its own.
"""
