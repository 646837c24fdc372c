"""``bpfsign probe``: which BPF signing features the running kernel has."""

from __future__ import annotations

from . import _common
from ._options import options

TYPE_CHECKING = False  # argparse/typing only for the type checker (CLI start-up is timed)
if TYPE_CHECKING:
    from typing import Any


@options
class ProbeOptions:
    json: bool = False


def register(sub: Any) -> None:
    p = sub.add_parser(
        "probe",
        help="show which BPF signing features this kernel has",
        description="Probe the running kernel: bpf() usable, exclusive maps, map hash, signed "
        "BPF_PROG_LOAD, load-time metadata verification, whether 6.18-style -S loaders can run, "
        "and whether the BPF LSM is active.",
    )
    _common.add_json(p)
    _common.set_command(p, ProbeOptions, handle)


def handle(opts: ProbeOptions) -> int:
    import platform

    from ..kernel import probes

    results = probes.probe_all()
    mark = {True: "yes", False: "no", None: "unknown"}
    lines = [f"kernel {platform.release()}"]
    lines += [
        f"  {p.name:<22} {mark[p.supported]:<8} {_common.cli_text(p.detail)}" for p in results
    ]
    obj = {
        "kernel": platform.release(),
        "probes": {p.name: p.as_dict() for p in results},
    }
    _common.emit(opts, obj, "\n".join(lines))
    return _common.EXIT_OK
