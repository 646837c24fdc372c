"""``bpfsign audit``: stream the enforcing policy's decisions, as lines or JSON lines.

Nothing is lost silently: when the policy could not write a decision (ring
buffer full) the stream says how many were dropped.
"""

from __future__ import annotations

from . import _common
from ._options import options

TYPE_CHECKING = False  # argparse/typing only for the type checker (CLI start-up is timed)
if TYPE_CHECKING:
    from typing import Any

    from ..kernel.backend import Backend


@options
class AuditOptions:
    pin: str = "/sys/fs/bpf/bpfsign"
    count: int | None = None
    timeout: float | None = None
    json: bool = False


def register(sub: Any) -> None:
    p = sub.add_parser(
        "audit",
        help="stream the decisions of a pinned `bpfsign enforce` policy",
        description="Follow the decisions of the policy pinned under --pin DIR: time, pid, uid, "
        "comm, program type and name, verdict, keyring type and serial, allowed or denied. "
        "Runs until interrupted (or --count/--timeout); reports drops when the ring buffer "
        "was full.",
    )
    p.add_argument(
        "--pin",
        metavar="DIR",
        default="/sys/fs/bpf/bpfsign",
        help="where the policy is pinned (default /sys/fs/bpf/bpfsign)",
    )
    p.add_argument("--count", type=int, metavar="N", help="stop after N decisions")
    p.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="stop after this long without a decision"
    )
    _common.add_json(p)
    _common.set_command(p, AuditOptions, handle)


def handle(opts: AuditOptions) -> int:
    from ..kernel import enforce

    with enforce.open_pinned(opts.pin) as p:
        return follow(opts, p.be, p.events, p.counters, count=opts.count, timeout=opts.timeout)


def follow(
    opts: Any,
    be: Backend,
    events: int,
    counters: int,
    *,
    count: int | None = None,
    timeout: float | None = None,
) -> int:
    """Print the stream until interrupted (SIGINT or SIGTERM), ``count`` or ``timeout``."""
    import json
    import signal
    import sys
    import time

    from ..kernel import audit

    def stop_on_term(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_term)
    last = time.monotonic()

    def idle() -> bool:
        return timeout is not None and time.monotonic() - last >= timeout

    try:
        for item in audit.stream(
            be,
            events,
            counters,
            limit=count,
            stop=idle,
            poll_ms=200 if timeout is not None else audit.POLL_MS,
        ):
            last = time.monotonic()
            if opts.json:
                sys.stdout.write(json.dumps(audit.record(item), sort_keys=True) + "\n")
            else:
                sys.stdout.write(audit.line(item) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    return _common.EXIT_OK
