"""The decision stream: a BPF ring buffer read through its mmapped pages.

The policy writes one :class:`~bpfsign.kernel.policy.Event` per decision with
``bpf_ringbuf_output``; when the buffer is full the program counts the loss
in its ``dropped`` counter instead, so a reader reports drops rather than
losing events silently. The policy does not wake the reader for each event
(a wakeup per BPF_PROG_LOAD costs the load an interrupt and a context
switch), only when the ring is half full, so the reader polls every
:data:`POLL_MS` (docs/policy.md §4). The reader is the kernel's ring buffer protocol: a
consumer page we write, a producer page and the data area (mapped twice in a
row, so a record that wraps reads contiguously) we only read.
"""

from __future__ import annotations

import enum
import mmap
import select
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import InputError
from .backend import Backend
from .policy import Event

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HDR = 8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
#: how often a reader looks at the ring (the policy wakes it only when half full)
POLL_MS = 250


class RingBuffer:
    """Consumer side of a BPF_MAP_TYPE_RINGBUF map (the fd stays the caller's)."""

    def __init__(self, be: Backend, fd: int) -> None:
        info = be.map_info(fd)
        size = info.max_entries
        if size <= 0 or size & (size - 1):
            raise InputError(f"map {info.name!r} (type {info.type}) is not a ring buffer")
        page = mmap.PAGESIZE
        self.fd = fd
        self.size = size
        self._mask = size - 1
        self._consumer = mmap.mmap(
            fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0
        )
        try:
            self._producer = mmap.mmap(
                fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page
            )
        except BaseException:
            self._consumer.close()
            raise
        self._data = page
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def close(self) -> None:
        self._producer.close()
        self._consumer.close()

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait(self, timeout_ms: int | None) -> bool:
        """Block until data may be there (or the timeout passes); True when woken."""
        return bool(self._poll.poll(timeout_ms))

    def pending(self) -> int:
        """Bytes the producer has published and we have not consumed."""
        cons = _U64.unpack_from(self._consumer, 0)[0]
        prod = _U64.unpack_from(self._producer, 0)[0]
        return int(prod - cons)

    def drain(self, limit: int | None = None) -> Iterator[bytes]:
        """Yield each committed record, advancing the consumer position as we go."""
        cons = _U64.unpack_from(self._consumer, 0)[0]
        prod = _U64.unpack_from(self._producer, 0)[0]
        n = 0
        while cons < prod and (limit is None or n < limit):
            at = self._data + (cons & self._mask)
            header = _U32.unpack_from(self._producer, at)[0]
            if header & _BUSY:
                break  # reserved, not yet committed
            length = header & ~(_BUSY | _DISCARD)
            record = None if header & _DISCARD else self._producer[at + _HDR : at + _HDR + length]
            cons += (length + _HDR + 7) & ~7
            _U64.pack_into(self._consumer, 0, cons)
            if record is not None:
                n += 1
                yield record
            prod = _U64.unpack_from(self._producer, 0)[0]


@dataclass(frozen=True)
class Dropped:
    """Decisions the policy could not write (ring buffer full): ``count`` new, ``total`` ever."""

    count: int
    total: int


def stream(
    be: Backend,
    events_fd: int,
    counters_fd: int,
    *,
    poll_ms: int = POLL_MS,
    stop: Callable[[], bool] | None = None,
    limit: int | None = None,
) -> Iterator[Event | Dropped]:
    """Decisions as they arrive, and a :class:`Dropped` whenever the drop counter grows.

    Drops from before the stream started are reported first. Ends when
    ``stop()`` says so or after ``limit`` events; otherwise runs until interrupted.
    """
    from .enforce import read_counters

    seen = 0
    with RingBuffer(be, events_fd) as rb:
        last = 0
        while True:
            for raw in rb.drain(None if limit is None else limit - seen):
                seen += 1
                yield Event.unpack(raw)
            dropped = read_counters(be, counters_fd)["dropped"]
            if dropped > last:
                yield Dropped(dropped - last, dropped)
                last = dropped
            if (limit is not None and seen >= limit) or (stop is not None and stop()):
                return
            if not rb.pending():
                rb.wait(poll_ms)


def _wall(boot_ns: int) -> str:
    """A CLOCK_BOOTTIME stamp as UTC wall-clock time (ISO 8601, milliseconds)."""
    import datetime
    import time

    unix = (
        time.clock_gettime(time.CLOCK_REALTIME)
        - time.clock_gettime(time.CLOCK_BOOTTIME)
        + boot_ns / 1e9
    )
    stamp = datetime.datetime.fromtimestamp(unix, datetime.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(item: Event | Dropped) -> dict[str, object]:
    """One stream item as a JSON object."""
    from .policy import REASON_TEXT, KeyringType, Verdict
    from .status import prog_type_name

    if isinstance(item, Dropped):
        return {"dropped": item.count, "dropped_total": item.total}
    return {
        "time": _wall(item.time_ns),
        "time_boot_ns": item.time_ns,
        "decision": item.decision.name.lower(),
        "reason": item.reason.name.lower(),
        "reason_text": REASON_TEXT[item.reason],
        "pid": item.pid,
        "uid": item.uid,
        "comm": item.comm,
        "prog_name": item.name,
        "prog_type": prog_type_name(item.prog_type),
        "verdict": _name(Verdict, item.verdict),
        "keyring_type": _name(KeyringType, item.keyring_type),
        "keyring_serial": item.keyring_serial,
        "kernel": item.kernel,
    }


def _name(cls: type[enum.IntEnum], value: int) -> str:
    try:
        return cls(value).name
    except ValueError:
        return str(value)


def line(item: Event | Dropped) -> str:
    """One stream item as a line of text."""
    r = record(item)
    if isinstance(item, Dropped):
        return (
            f"DROPPED {item.count} decision(s): the ring buffer was full "
            f"({item.total} dropped in total)"
        )
    decision = {"allow": "ALLOW", "deny": "DENY", "would_deny": "WOULD-DENY"}[str(r["decision"])]
    return (
        f"{r['time']} {decision:<10} pid={r['pid']} uid={r['uid']} comm={r['comm']} "
        f"prog={r['prog_name'] or '-'} type={r['prog_type']} verdict={r['verdict']} "
        f"keyring={r['keyring_type']} serial={r['keyring_serial']}"
        f"{' kernel' if item.kernel else ''} ({r['reason_text']})"
    )
