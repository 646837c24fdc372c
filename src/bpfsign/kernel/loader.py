"""Load a light skeleton from Python, the way ``skel_internal.h`` does it in C.

``__open`` prepares each global-data section image and passes its address in
the ctx; ``__load`` runs the loader program (:func:`~bpfsign.kernel.backend.run_loader`);
afterwards each map the header finalizes is mmapped exactly as the header's
``skel_finalize_map_data`` call says -- PROT_READ for a frozen read-only map,
and not at all for a map that is not mmapable (per-CPU data) -- so the globals
are live (docs/lskel.md §5, §10.4). Everything kernel-side goes through a
:class:`~bpfsign.kernel.backend.Backend`. The loaded skeleton owns its map and
program fds as the C skeleton struct does (plain numbers, closed once by
:meth:`LoadedSkeleton.close` or its finalizer); links are close-once
:class:`~bpfsign.kernel.fd.FD`.

:class:`Loader` does the per-skeleton work once (audit, scheme, templates);
its :meth:`Loader.load` is the hot path and does only what C does per load.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from ..errors import InputError, KernelError, UnsupportedFeature, errno_name
from ..skel import globaldata as _gd
from ..skel import scheme as _scheme
from ..skel import skeleton as _skel
from . import consts as C
from .backend import Backend, LoaderRequest, LoaderSteps, default_backend, run_loader
from .fd import FD
from .rulebook import RULES, Rule

__all__ = ["LoadedSkeleton", "Loader", "load"]

_mmap, _MAP_SHARED = mmap.mmap, mmap.MAP_SHARED

#: per section: raw image bytes, or member name -> value (``{"sample_every": 42}``)
InitialValues = Mapping[str, "bytes | Mapping[str, Any]"]

KEY_SPEC_SESSION_KEYRING = C.KEY_SPEC_SESSION_KEYRING
_BTF_ATTACH = frozenset(("tracing", "tp_btf", "fentry", "fexit", "fmod_ret", "lsm"))


class LoadedSkeleton:
    """The fds and live globals of one loaded skeleton; ``close()`` releases them all."""

    # slots, and what does not change between loads read through the Loader: one is
    # made and dropped per load, and the benchmark counts microseconds
    __slots__ = ("_fds", "_links", "_loader", "_mem", "_typed", "closed")

    def __init__(
        self, loader: Loader, fds: tuple[int, ...], mem: list[mmap.mmap] | tuple[()]
    ) -> None:
        self._loader = loader
        self._fds = fds  # the maps' fds, then the programs'; -1: none (closed, or not loaded)
        self._mem = mem  # the mmapped maps, in the order of loader.sections_mapped
        self._links: dict[str, FD] | None = None  # made by the first attach
        self._typed: dict[str, _gd.GlobalData] | None = None  # made by the first section()
        self.closed = False  # last: until here the finalizer has nothing to do

    @property
    def skeleton(self) -> _skel.Skeleton:
        return self._loader.skeleton

    @property
    def scheme(self) -> str:
        """``loadtime`` or ``inloader``: which signing scheme the skeleton's loader uses."""
        return self._loader.scheme

    @property
    def signed(self) -> bool:
        """Whether it was loaded signed (the signature passed in BPF_PROG_LOAD)."""
        return self._loader.signed

    @property
    def _backend(self) -> Backend:
        return self._loader.backend

    @property
    def _nmaps(self) -> int:
        return self._loader.nmaps

    # ------------------------------------------------------------- lookup
    @property
    def maps(self) -> dict[str, int]:
        """Map fds by the skeleton's map names (``counts``, ``bss``, ``rodata`` …)."""
        return {
            m.name: fd
            for m, fd in zip(self.skeleton.maps, self._fds[: self._nmaps], strict=True)
            if fd >= 0
        }

    @property
    def progs(self) -> dict[str, int]:
        """Program fds by name; a program the object does not autoload has none (as in C)."""
        return {
            p.name: fd
            for p, fd in zip(self.skeleton.progs, self._fds[self._nmaps :], strict=True)
            if fd >= 0
        }

    @property
    def links(self) -> dict[str, int]:
        return {name: fd.number for name, fd in (self._links or {}).items()}

    def map_fd(self, name: str) -> int:
        self._check_open()
        return self._lookup(self.maps, name, "map")

    def prog_fd(self, name: str) -> int:
        self._check_open()
        return self._lookup(self.progs, name, "program")

    def _lookup(self, table: dict[str, int], name: str, what: str) -> int:
        self._check_open()
        try:
            return table[name]
        except KeyError:
            known = {m.name for m in self.skeleton.maps} | {p.name for p in self.skeleton.progs}
            if name in known:
                raise InputError(
                    f"{what} {name!r} of skeleton {self.skeleton.name} was not loaded: the "
                    "loader left no fd for it (the BPF object does not autoload it)",
                    path=self.skeleton.path,
                ) from None
            raise InputError(
                f"no {what} {name!r} in skeleton {self.skeleton.name} "
                f"(it has: {', '.join(table) or 'none'})",
                path=self.skeleton.path,
            ) from None

    def globals(self, section: str) -> memoryview:
        """The live value of a global-data map (``bss``, ``.data``, ``rodata`` …) as bytes.

        Writable except for read-only sections. After :meth:`close`, a view still held
        keeps the mapping alive (it is never left dangling).
        """
        return memoryview(self._section_mem(section)[1])

    def section(self, section: str) -> _gd.GlobalData:
        """A section's members by name, as the C skeleton's ``skel->bss->hits``.

        Writable sections are live over the mmapped map; a read-only one (frozen
        ``.rodata``) is its value, and refuses writes with :class:`InputError`.
        """
        name, mm = self._section_mem(section)
        if self._typed is None:
            self._typed = {}
        typed = self._typed.get(name)
        if typed is None:
            spec = next(m for m in self.skeleton.maps if m.name == name)
            layout = self._loader.layouts[name]
            readonly = spec.readonly
            obj = (
                layout.struct.from_buffer_copy(mm[: layout.size])
                if readonly
                else layout.struct.from_buffer(mm)
            )
            typed = self._typed[name] = _gd.GlobalData(layout, obj, readonly)
        return typed

    def __getattr__(self, name: str) -> _gd.GlobalData:
        """``loaded.bss``, ``loaded.data``, ``loaded.rodata``: :meth:`section` by attribute."""
        if name.startswith("_") or name in ("skeleton", "closed"):
            raise AttributeError(name)
        if any(m.name == name and m.section for m in self.skeleton.maps):
            return self.section(name)
        raise AttributeError(
            f"{type(self).__name__} has no attribute {name!r} (and {self.skeleton.name} "
            "has no global-data section of that name)"
        )

    def _section_mem(self, section: str) -> tuple[str, mmap.mmap]:
        self._check_open()
        want = section.lstrip(".").replace(".", "_")
        for name, mm in zip(self._loader.sections_mapped, self._mem, strict=True):
            if name == want:
                return name, mm
        spec = next((m for m in self.skeleton.maps if m.section and m.name == want), None)
        if spec is not None:
            if spec.initial_value is not None:  # a per-CPU section (skel_protect_map_data)
                why = (
                    "it is a per-CPU array, which the kernel cannot mmap, so the header never "
                    "maps it (its image is the initial value only); read each CPU's value "
                    f"with a map lookup on map_fd({spec.name!r})"
                )
            else:
                why = (
                    "bpftool did not make it mmapable (none of its variables is visible "
                    "to user space), so the header never maps it"
                )
            raise InputError(
                f"section {spec.section} (map {spec.name}) of skeleton {self.skeleton.name} "
                f"is not mmapable: {why}",
                path=self.skeleton.path,
            )
        have = ", ".join(self._loader.sections_mapped[: len(self._mem)]) or "none"
        raise InputError(
            f"skeleton {self.skeleton.name} has no global-data section {section!r} (it has: {have})",
            path=self.skeleton.path,
        )

    # ------------------------------------------------------------- attach
    def attach(self, *names: str) -> dict[str, int]:
        """Attach the named programs (default: every one the skeleton can auto-attach).

        raw_tp → RAW_TRACEPOINT_OPEN with the name; tp_btf/fentry/fexit/lsm →
        RAW_TRACEPOINT_OPEN with NULL; iter → LINK_CREATE (docs/lskel.md §1).
        """
        self._check_open()
        progs = {p.name: p for p in self.skeleton.progs}
        loaded = self.progs
        chosen = names or tuple(n for n, p in progs.items() if p.attach is not None and n in loaded)
        if self._links is None:
            self._links = {}
        for name in chosen:
            if name in self._links:
                continue
            spec = progs.get(name)
            fd = self._lookup(loaded, name, "program")
            if spec is None:
                continue
            kind = spec.attach
            if kind is None:
                raise InputError(
                    f"program {name!r}: the skeleton does not support auto-attach for it "
                    "(attach it yourself with its fd)",
                    path=self.skeleton.path,
                )
            if kind.startswith("raw_tp:"):
                link = self._backend.raw_tracepoint_open(fd, kind.split(":", 1)[1])
            elif kind in _BTF_ATTACH:
                link = self._backend.raw_tracepoint_open(fd, None)
            elif kind == "iter":
                link = self._backend.link_create(fd, 0, C.BPF_TRACE_ITER)
            else:
                raise InputError(f"program {name!r}: unknown attach kind {kind!r}")
            self._links[name] = FD(link, f"link {name}", self._backend.close)
        return self.links

    def detach(self) -> None:
        links = self._links or {}
        for name in list(links):
            links.pop(name).close()

    # ---------------------------------------------------------------- pin
    def pin(self, directory: str | os.PathLike[str]) -> list[str]:
        """Pin every map, program and link under ``directory`` (on a bpffs mount)."""
        self._check_open()
        base = Path(directory)
        base.mkdir(parents=True, exist_ok=True)
        pinned = []
        objects = [("map", self.maps), ("prog", self.progs), ("link", self.links)]
        for kind, table in objects:
            for name, fd in table.items():
                path = str(base / f"{kind}_{name}")
                try:
                    self._backend.obj_pin(fd, path)
                except KernelError as exc:
                    hint = ""
                    if exc.errno == errno.EPERM:
                        hint = f"{base} must be on a bpf filesystem (mount -t bpf bpf {base})"
                    elif exc.errno == errno.EEXIST:
                        hint = f"{path} exists already; remove it or pin elsewhere"
                    raise KernelError(exc.errno, "BPF_OBJ_PIN", message=hint or path) from None
                pinned.append(path)
        return pinned

    # ----------------------------------------------------------- describe
    def describe(self) -> dict[str, Any]:
        """What was created: maps and programs with kernel ids and types, and links.

        Every program of the skeleton is listed; one the object does not autoload has
        ``"loaded": False`` and no fd or kernel fields.
        """
        self._check_open()
        maps: list[dict[str, Any]] = []
        for spec, fd in zip(self.skeleton.maps, self._fds[: self._nmaps], strict=True):
            if fd < 0:  # the loader created no such map
                maps.append({"name": spec.name, "fd": None})
                continue
            info = self._backend.map_info(fd)
            maps.append(
                {
                    "name": spec.name,
                    "fd": fd,
                    "id": info.id,
                    "type": info.type,
                    "kernel_name": info.name,
                    "key_size": info.key_size,
                    "value_size": info.value_size,
                    "max_entries": info.max_entries,
                }
            )
        progs: list[dict[str, Any]] = []
        for pspec, fd in zip(self.skeleton.progs, self._fds[self._nmaps :], strict=True):
            if fd < 0:  # not autoloaded: no fd, as in C
                progs.append(
                    {"name": pspec.name, "fd": None, "loaded": False, "attach": pspec.attach}
                )
                continue
            pinfo = self._backend.prog_info(fd)
            progs.append(
                {
                    "name": pspec.name,
                    "fd": fd,
                    "loaded": True,
                    "id": pinfo.id,
                    "type": pinfo.type,
                    "kernel_name": pinfo.name,
                    "tag": pinfo.tag.hex(),
                    "attach": pspec.attach,
                }
            )
        return {
            "skeleton": self.skeleton.name,
            "scheme": self.scheme,
            "signed": self.signed,
            "maps": maps,
            "progs": progs,
            "links": [{"prog": n, "fd": fd} for n, fd in self.links.items()],
        }

    # -------------------------------------------------------------- close
    def _check_open(self) -> None:
        if self.closed:
            raise InputError(f"skeleton {self.skeleton.name} is closed")

    def close(self) -> None:
        """Release every link, program and map fd and unmap the globals (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._typed:
            self._typed.clear()  # our own views must not pin the mappings
        for mm in self._mem:
            # (not contextlib.suppress: one object fewer per map, on the hot path)
            try:  # noqa: SIM105
                mm.close()
            except BufferError:
                pass  # a view still held keeps the mapping (and its map) until it is dropped
        self._mem = ()
        if self._links:
            links = list(self._links.values())
            self._links.clear()
            for link in links:
                link.close()
        # as the header's __destroy: programs, then maps ([maps..., progs...] reversed)
        fds, self._fds = self._fds, ()
        closer = self._loader.backend.close
        failed: OSError | None = None
        for fd in reversed(fds):
            if fd >= 0:
                try:
                    closer(fd)
                except OSError as exc:  # close the others all the same
                    failed = failed or exc
        if failed is not None:
            raise failed

    def __del__(self) -> None:
        """Dropped without close(): release everything, and say so, as a file does."""
        if not getattr(self, "closed", True):
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=1, source=self)
            self.close()

    def __enter__(self) -> LoadedSkeleton:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = (
            "closed" if self.closed else f"{self._nmaps} maps, {len(self._fds) - self._nmaps} progs"
        )
        return f"<LoadedSkeleton {self.skeleton.name} {self.scheme} ({state})>"


class Loader:
    """Everything about loading one skeleton that does not change between loads."""

    def __init__(
        self,
        skel: _skel.Skeleton,
        *,
        keyring_id: int = KEY_SPEC_SESSION_KEYRING,
        unsigned: bool = False,
        backend: Backend | None = None,
        log_level: int = 0,
        check_kernel: bool | None = None,
    ) -> None:
        self.skeleton = skel
        self.backend: Backend = backend if backend is not None else default_backend()
        audit = _scheme.audit(skel)
        self.audit = audit
        self.scheme = "inloader" if audit.hash_check is not None else "loadtime"
        self.signed = skel.signature is not None and not unsigned
        if skel.endian != sys.byteorder:
            raise UnsupportedFeature(
                f"{skel.endian}-endian loader ({skel.name})",
                f"its instructions are for a {skel.endian}-endian kernel and this one is "
                f"{sys.byteorder}-endian (its BPF_PROG_LOAD would fail with EINVAL); "
                "regenerate the skeleton for this target",
                errno=errno.EINVAL,  # what the kernel answers (the C loader: EINVAL at PROG_LOAD)
            )
        if check_kernel is None:
            # a backend that only gives verdicts (the model) answers these cases itself,
            # with the kernel's own errno and log
            check_kernel = self.backend.probe("run_programs") is not False
        if check_kernel:
            self._check_kernel()
        self.request = LoaderRequest(
            insns=skel.insns,
            data=skel.data,
            excl_prog_hash=skel.excl_hash,
            signature=skel.signature if self.signed else None,
            keyring_id=keyring_id if self.signed else 0,
            fd_array_cnt=1 if self.signed and self.scheme == "loadtime" else 0,
            hash_request=self.scheme == "inloader",
            log_level=log_level,
            name=skel.name,
        )
        # Section images stay in buffers owned by this Loader; their addresses go into
        # the ctx template once (the loader copy_from_user()s value_size bytes from them).
        # Only images the header prepares (skel_prep_map_data) are passed, as in C.
        ctx = bytearray(skel.ctx_size)
        struct.pack_into("<I", ctx, 0, skel.ctx_size)
        self._images_buf: dict[str, ctypes.Array[ctypes.c_char]] = {}
        sections = []
        for m in skel.maps:
            if m.section is None:
                continue
            image = m.initial_value
            if image is not None:
                buf = ctypes.create_string_buffer(image, max(len(image), 1))
                self._images_buf[m.name] = buf
                struct.pack_into("<Q", ctx, m.ctx_offset + 8, ctypes.addressof(buf))
            length = len(image) if image is not None else 0
            size = m.mmap_size or _page_round(length)
            sections.append((m.name, m.index, m.ctx_offset, length, size, m.readonly, m.mmapable))
        self._sections = sections
        #: (map index, mmap size, prot): the header's skel_finalize_map_data calls
        #: (mmap.mmap given PROT_READ alone exports a read-only buffer, as ACCESS_READ does)
        mapped = [s for s in sections if s[6]]
        self._finalize = tuple(
            (i, size, mmap.PROT_READ if ro else mmap.PROT_READ | mmap.PROT_WRITE)
            for _n, i, _o, _l, size, ro, _m in mapped
        )
        #: the names of the maps mmapped at each load, in that order
        self.sections_mapped = tuple(n for n, *_ in mapped)
        self.layouts = {m.name: _gd.section_layout(m, skel.name) for m in skel.maps if m.section}
        #: (map, "max_entries"|"initial_value") pairs the loader program reads from the ctx
        self.honoured = frozenset((o.map, o.field) for o in audit.overrides)
        self._ctx = bytes(ctx)
        self._ctx_type = ctypes.c_char * skel.ctx_size
        nmaps = len(skel.maps)
        #: the fd slots in the ctx, after its header: per map (fd, max_entries, initial_value)
        self._fd_slots = struct.Struct("<" + "i12x" * nmaps + "i" * len(skel.progs))
        self.nmaps = nmaps
        self._steps: LoaderSteps | None = None  # the backend's, asked for at the first load

    def _check_kernel(self) -> None:
        """Refuse, before any syscall, what this kernel is known to refuse (docs/kernel.md §14).

        In the kernel's order and words: the rulebook's errno, log line and fix for
        the check the load would fail (a signed 6.18-scheme loader fails at the
        signature's map binding before the verifier reads its struct bpf_map).
        """
        name = self.skeleton.name
        if (
            self.signed
            and self.scheme == "inloader"
            and self.backend.probe("loadtime_verification") is True
        ):
            _refuse(
                RULES["bind_after_signature"],
                f"6.18-scheme signature ({name})",
                "even when its signature verifies, this kernel refuses it",
            )
        if self.audit.exclusivity_check and self.backend.probe("inloader_loaders") is False:
            _refuse(
                RULES["bpf_map_layout"],
                f"6.18-style signed loader ({name})",
                "this kernel's verifier refuses it",
            )

    def load(
        self,
        *,
        max_entries: Mapping[str, int] | None = None,
        initial_values: InitialValues | None = None,
    ) -> LoadedSkeleton:
        """``<name>__open_and_load()``: returns the loaded skeleton or raises.

        ``initial_values`` sets a section before load, as its raw image or by member
        (``{"data": {"sample_every": 42}}``); ``max_entries`` resizes maps. Both go
        through the ctx, which only an unsigned-mode (``-L``) loader reads: for one that
        ignores them (bpftool ``-S``) they raise :class:`InputError` instead of vanishing.

        Like ``skel_prep_map_data``/``skel_finalize_map_data`` but one mmap lighter per
        section: the images come from buffers prepared once, and each map the header
        finalizes is mmapped after the load with the header's protection (MAP_SHARED;
        PROT_READ for read-only maps; per-CPU maps not at all), through Python's mmap so
        that a view can never outlive its mapping.
        """
        # The hot path: what C does per load and little else (bench/bench_corpus.py
        # holds it to 1.05x skel_internal.h); Python here costs per bytecode.
        ctx = self._ctx_type.from_buffer_copy(self._ctx)  # a ctypes array: no wrapping per load
        keep = None
        if max_entries:
            self._set_max_entries(ctx, max_entries)
        if initial_values:
            keep = self._override_images(ctx, initial_values)
        steps = self._steps
        if steps is None:
            steps = self._steps = self.backend.loader_steps(self.request)
        run_loader(self.backend, self.request, ctx, steps=steps)
        del keep
        fds: tuple[int, ...] = self._fd_slots.unpack_from(ctx, 24)
        if 0 in fds:  # as skel_closenz: a slot the loader left at 0 owns nothing
            fds = tuple(fd if fd > 0 else -1 for fd in fds)
        # the header's skel_finalize_map_data calls
        mem: list[mmap.mmap] = []
        try:
            for index, size, prot in self._finalize:
                mem.append(_mmap(fds[index], size, _MAP_SHARED, prot))
        except BaseException as exc:
            self._unwind(fds, mem, exc)
        return LoadedSkeleton(self, fds, mem)

    def _unwind(self, fds: tuple[int, ...], mem: list[mmap.mmap], exc: BaseException) -> NoReturn:
        """A section mmap failed: release everything loaded so far, and say which map."""
        LoadedSkeleton(self, fds, mem).close()
        if not isinstance(exc, OSError):
            raise exc
        name = self.sections_mapped[len(mem)]
        _index, size, prot = self._finalize[len(mem)]
        how = "PROT_READ" if prot == mmap.PROT_READ else "PROT_READ | PROT_WRITE"
        raise KernelError(
            exc.errno or 0,
            "mmap",
            step="mmap",
            where=f"{self.skeleton.name}: mmap of map {name} failed ({size} bytes, {how})",
        ) from None

    def _set_max_entries(self, ctx: ctypes.Array[ctypes.c_char], values: Mapping[str, int]) -> None:
        by_name = {m.name: m for m in self.skeleton.maps}
        for name, n in values.items():
            spec = by_name.get(name)
            if spec is None:
                raise InputError(
                    f"no map {name!r} in skeleton {self.skeleton.name} "
                    f"(it has: {', '.join(by_name)})",
                    path=self.skeleton.path,
                )
            self._check_honoured(name, "max_entries")
            struct.pack_into("<I", ctx, spec.ctx_offset + 4, n)

    def _check_honoured(self, name: str, what: str) -> None:
        if (name, what) in self.honoured:
            return
        why = (
            "a signed-mode loader (bpftool -S) takes map sizes and initial values from its "
            "signed data, never from the caller"
            if self.audit.mode == "signed"
            else f"this loader program never reads {name}'s {what} from the ctx"
        )
        raise InputError(
            f"cannot set {what} of {name} for {self.skeleton.name}: {why}; it would be "
            "silently ignored. Change it in the BPF object and regenerate (and re-sign)",
            path=self.skeleton.path,
        )

    def _override_images(
        self, ctx: ctypes.Array[ctypes.c_char], values: InitialValues
    ) -> list[ctypes.Array[ctypes.c_char]]:
        """Point the ctx at caller-supplied section images (zero-padded to the value size)."""
        wanted = {k.lstrip(".").replace(".", "_"): v for k, v in values.items()}
        keep = []
        for name, index, off, length, _size, _ro, _mm in self._sections:
            new = wanted.pop(name, None)
            if new is None:
                continue
            self._check_honoured(name, "initial_value")
            if isinstance(new, Mapping):
                spec = self.skeleton.maps[index]
                try:
                    new = _gd.build_image(self.layouts[name], spec.initial_value or b"", new)
                except InputError as exc:
                    raise InputError(exc.reason, path=self.skeleton.path) from None
            if len(new) > length:
                raise InputError(
                    f"initial value for {name} is {len(new)} bytes; the section is {length}",
                    path=self.skeleton.path,
                )
            buf = ctypes.create_string_buffer(bytes(new).ljust(length, b"\0"), max(length, 1))
            keep.append(buf)
            struct.pack_into("<Q", ctx, off + 8, ctypes.addressof(buf))
        if wanted:
            have = ", ".join(n for n, *_ in self._sections) or "none"
            raise InputError(
                f"no global-data section {', '.join(sorted(wanted))} in skeleton "
                f"{self.skeleton.name} (it has: {have})",
                path=self.skeleton.path,
            )
        return keep


def _page_round(n: int) -> int:
    page = os.sysconf("SC_PAGE_SIZE")
    return max(page, (n + page - 1) // page * page)


def _refuse(rule: Rule, what: str, who: str) -> NoReturn:
    """``what`` cannot load on this kernel: the check it fails, as the kernel reports it."""
    raise UnsupportedFeature(
        what, f"{who} with {errno_name(rule.errno)} '{rule.log}': {rule.hint}", errno=rule.errno
    )


def load(
    skel: _skel.Skeleton | str | os.PathLike[str],
    *,
    keyring_id: int = KEY_SPEC_SESSION_KEYRING,
    unsigned: bool = False,
    max_entries: Mapping[str, int] | None = None,
    initial_values: InitialValues | None = None,
    backend: Backend | None = None,
    log_level: int = 0,
) -> LoadedSkeleton:
    """Load a light skeleton (a parsed one or a ``*.lskel.h`` path) and return it loaded.

    A signed skeleton is loaded signed (``keyring_id`` names the keyring: 0/1/2, -3 or a
    keyring serial) unless ``unsigned``; unsigned skeletons load unsigned.
    """
    if not isinstance(skel, _skel.Skeleton):
        skel = _skel.load(skel)
    loader = Loader(
        skel, keyring_id=keyring_id, unsigned=unsigned, backend=backend, log_level=log_level
    )
    return loader.load(max_entries=max_entries, initial_values=initial_values)


#: ``bpfsign.load_skeleton``: the package-level name for :func:`load`.
load_skeleton = load
