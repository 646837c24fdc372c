"""``bpfsign enforce``: require signed BPF on this host (a BPF-LSM policy on bpf_prog_load).

Without ``--pin`` the policy lives as long as this process, which streams its
decisions until interrupted; with ``--pin DIR`` it is pinned in bpffs and
outlives the process. ``--status DIR`` and ``--off DIR`` inspect and remove
a pinned policy.
"""

from __future__ import annotations

from . import _common
from ._options import options

TYPE_CHECKING = False  # argparse/typing only for the type checker (CLI start-up is timed)
if TYPE_CHECKING:
    from typing import Any


@options
class EnforceOptions:
    pin: str | None = None
    status: str | None = None
    off: str | None = None
    allow_keyring: str | None = None
    allow_serial: tuple[int, ...] | None = None
    audit: bool = False
    follow: bool = False
    ring_size: int = 1 << 20
    json: bool = False


def register(sub: Any) -> None:
    p = sub.add_parser(
        "enforce",
        help="require signed BPF programs on this host (BPF-LSM policy)",
        description="Install a BPF-LSM policy on bpf_prog_load: loads from inside the kernel "
        "(a verified loader's programs) pass; user-space loads need a signature the kernel "
        "VERIFIED against a trusted keyring, read from the kernel's own record of the load. "
        "Every decision is counted and streamed. Needs a kernel that records the signature "
        "verdict (Linux 7.x) with the BPF LSM active.",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--pin",
        metavar="DIR",
        help="pin the policy in bpffs under DIR so it "
        "outlives this process (e.g. /sys/fs/bpf/bpfsign)",
    )
    what.add_argument(
        "--status", metavar="DIR", help="show the policy pinned under DIR and its decision counters"
    )
    what.add_argument("--off", metavar="DIR", help="remove the policy pinned under DIR")
    p.add_argument(
        "--allow-keyring",
        metavar="IDS",
        help="system keyrings to trust, as "
        "keyring ids: 0 builtin, 1 secondary, 2 platform, comma-separated "
        "(default 0)",
    )
    p.add_argument(
        "--allow-serial",
        metavar="SERIAL",
        type=lambda s: int(s, 0),
        action="append",
        help="also trust this keyring serial (repeatable; up to 1024)",
    )
    p.add_argument(
        "--audit",
        action="store_true",
        help="admit everything, record what would be denied (roll out in audit mode first)",
    )
    p.add_argument(
        "--follow",
        action="store_true",
        help="with --pin: stream decisions after installing, until interrupted",
    )
    p.add_argument(
        "--ring-size",
        metavar="BYTES",
        type=lambda s: int(s, 0),
        default=1 << 20,
        help="decision ring buffer size, a power of two (default 1 MiB)",
    )
    _common.add_json(p)
    _common.set_command(p, EnforceOptions, handle)


def _keyring_ids(text: str | None) -> list[int] | None:
    from ..errors import InputError

    if text is None:
        return None
    try:
        return [int(t, 0) for t in text.split(",") if t.strip()]
    except ValueError:
        raise InputError(
            f"--allow-keyring {text!r}: expected comma-separated keyring ids such as 0,1,2"
        ) from None


def handle(opts: EnforceOptions) -> int:
    from ..kernel import enforce
    from ..kernel.policy import Policy

    if opts.off is not None:
        removed = enforce.remove(opts.off)
        _common.emit(
            opts,
            {"ok": True, "removed": removed, "pin_dir": opts.off},
            f"removed the policy pinned under {opts.off} ({', '.join(removed)})",
        )
        return _common.EXIT_OK
    if opts.status is not None:
        return _status(opts, opts.status)
    policy = Policy.from_options(
        _keyring_ids(opts.allow_keyring), opts.allow_serial or (), audit=opts.audit
    )
    inst = enforce.install(policy, opts.pin, ring_size=opts.ring_size)
    try:
        where = f"pinned under {opts.pin}" if opts.pin else "until interrupted"
        summary = {
            "ok": True,
            "policy": policy.describe(),
            "prog_id": inst.prog_id,
            "pin_dir": opts.pin,
        }
        streaming = opts.pin is None or opts.follow
        if opts.json and streaming:  # JSON lines: the summary, then one line per decision
            import json

            print(json.dumps(summary, sort_keys=True), flush=True)
        else:
            _common.emit(
                opts,
                summary,
                f"policy installed ({policy.describe()}), prog id {inst.prog_id}, {where}",
            )
        if streaming:
            from .audit import follow

            return follow(opts, inst.be, inst.events, inst.counters)
        return _common.EXIT_OK
    finally:
        inst.close()


def _status(opts: EnforceOptions, pin_dir: str) -> int:
    from ..kernel import enforce

    with enforce.open_pinned(pin_dir) as p:
        counters = enforce.read_counters(p.be, p.counters)
        policy = enforce.read_policy(p.be, p.config)
    text = [f"policy pinned under {pin_dir}: {policy.describe()}"]
    text += [f"  {name:<11} {value}" for name, value in counters.items()]
    _common.emit(
        opts,
        {
            "pin_dir": pin_dir,
            "policy": policy.describe(),
            "audit": policy.audit,
            "keyring_types": sorted(t.name.lower() for t in policy.keyring_types),
            "serials": list(policy.serials),
            "counters": counters,
        },
        "\n".join(text),
    )
    return _common.EXIT_OK
