"""One BPF_PROG_LOAD as the signature path sees it: the attr's fields, its fds looked up.

The rules engine (kernel/rules.py) judges a :class:`Load`; the kernel model
builds one from its objects, offline verification from a header
(:func:`skeleton_load`, the load ``skel_internal.h`` issues). Plain classes:
``bpfsign verify`` imports this on its start-up path.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

__all__ = ["Load", "MapRef", "Runtime", "skeleton_load"]

MAP_TYPE_HASH, MAP_TYPE_ARRAY, MAP_TYPE_PERCPU_ARRAY = 1, 2, 6


class MapRef:
    """What one fd (an ``fd_array`` entry, or an ``ld_imm64`` imm) refers to, as the kernel sees it.

    ``kind``: "map", "btf", "not-bpf" (an open fd of another kind) or "closed"
    (no such fd). ``key`` identifies the object (two fds of one map share it).
    """

    __slots__ = ("excl_prog_hash", "fd", "frozen", "key", "kind", "map_type", "max_entries",
                 "name", "value", "value_size")  # fmt: skip

    def __init__(
        self,
        fd: int,
        kind: str = "map",
        *,
        key: object = None,
        name: str = "",
        map_type: int = MAP_TYPE_ARRAY,
        max_entries: int = 1,
        value: bytes = b"",
        value_size: int | None = None,
        frozen: bool = True,
        excl_prog_hash: bytes | None = None,
    ) -> None:
        self.fd = fd
        self.kind = kind
        self.key = key if key is not None else object()
        self.name = name
        self.map_type = map_type
        self.max_entries = max_entries
        self.value = value  # entry 0, value_size bytes
        self.value_size = len(value) if value_size is None else value_size
        self.frozen = frozen
        self.excl_prog_hash = excl_prog_hash

    def describe(self) -> str:
        if self.kind != "map":
            return f"fd {self.fd} ({self.kind})"
        return f"'{self.name}'"


class Runtime:
    """What a light skeleton's loader program does once loaded (6.18-style checks only)."""

    __slots__ = ("baked_hash", "data_hash", "exclusivity_check", "hash_check", "hash_request")

    def __init__(self, *, hash_check: bool, exclusivity_check: bool, hash_request: bool,
                 baked_hash: bytes | None, data_hash: bytes) -> None:  # fmt: skip
        self.hash_check = hash_check
        self.exclusivity_check = exclusivity_check
        self.hash_request = hash_request
        self.baked_hash = baked_hash
        self.data_hash = data_hash


class Load:
    """One BPF_PROG_LOAD: the attr fields the signature path reads, with fds already looked up.

    ``fd_array`` holds the first ``fd_array_cnt`` entries (entries past the
    caller's array are whatever memory follows it: the caller decides).
    ``lookup(fd)`` resolves an fd named by an ``ld_imm64`` (MAP_FD forms) and
    ``reread(i)`` re-reads ``fd_array[i]`` when the verifier resolves an IDX
    form; both default to the snapshot in ``fd_array`` / ``array``.
    """

    __slots__ = ("array", "big", "fd_array", "fd_array_cnt", "insns", "keyring_id", "lookup",
                 "prog_name", "reread", "runtime", "signature")  # fmt: skip

    def __init__(
        self,
        insns: bytes,
        *,
        signature: bytes | None = None,
        keyring_id: int = 0,
        fd_array: Sequence[MapRef] = (),
        fd_array_cnt: int = 0,
        array: Sequence[MapRef] = (),
        lookup: Callable[[int], MapRef] | None = None,
        reread: Callable[[int], MapRef | None] | None = None,
        runtime: Runtime | None = None,
        prog_name: str = "",
        big: bool = False,
    ) -> None:
        self.insns = insns
        self.big = big  # a big-endian loader, judged as a big-endian kernel would
        self.signature = signature
        self.keyring_id = keyring_id
        self.fd_array = list(fd_array)
        self.fd_array_cnt = fd_array_cnt
        self.array = list(array) if array else list(fd_array)
        self.lookup = lookup
        self.reread = reread
        self.runtime = runtime
        self.prog_name = prog_name


def skeleton_load(
    skel: Any, *, keyring_id: int = -3, unsigned: bool = False, audit: Any = None
) -> Load:
    """The loader's BPF_PROG_LOAD as ``skel_internal.h`` issues it (docs/lskel.md §10.2).

    An exclusive, frozen one-entry ``__loader.map`` holding the data in
    ``fd_array[0]``; ``fd_array_cnt`` 1 for a signed load-time loader, else 0;
    a 6.18-style loader asks for the map hash and runs its own checks. ``audit``:
    the header's loader audit, when the caller has it already (it decodes every insn).
    """
    if audit is None:
        from ..skel import scheme

        audit = scheme.audit(skel)
    signed = skel.signature is not None and not unsigned
    block = audit.hash_check
    meta = MapRef(-1, name="__loader.map", value=skel.data, excl_prog_hash=skel.excl_hash)
    return Load(
        skel.insns, signature=skel.signature if signed else None,
        keyring_id=keyring_id if signed else 0, fd_array=[meta],
        fd_array_cnt=1 if signed and block is None else 0, prog_name="__loader.prog",
        runtime=Runtime(
            hash_check=block is not None, exclusivity_check=audit.exclusivity_check,
            hash_request=block is not None, baked_hash=block.baked_hash if block else None,
            data_hash=audit.data_hash,
        ),
        big=skel.endian == "big",
    )  # fmt: skip
