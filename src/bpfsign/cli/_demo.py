"""``bpfsign demo``: run the demo steps of bpfsign.cli._demo_app and print each verdict."""

from __future__ import annotations

from . import _common

# argparse and typing are needed here only by the type checker (CLI start-up is timed).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="sign, verify and load bundled examples with a throwaway key",
        description="Make a throwaway key and certificate in a temporary directory; sign the "
        "bundled example payload and verify it offline; convert and sign the bundled bpftool -S "
        "light skeleton under the load-time scheme and verify it; show tampered copies "
        "rejected; load the skeleton if this kernel can (otherwise say why).",
    )
    p.add_argument(
        "--keep",
        metavar="DIR",
        help="write the demo files to DIR (created if needed) and keep them",
    )
    _common.add_json(p)
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import _demo_app as demo

    workdir = None
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)

    def report(index: int, total: int, result: Any) -> None:
        if args.json:
            return
        mark = {"ok": "", "skipped": "skipped: ", "failed": "FAILED: "}[result.status]
        print(f"[{index}/{total}] {result.title}: {mark}{result.detail}")

    results = demo.run(workdir=workdir, report=report)
    ok = all(r.status != "failed" for r in results)
    obj = {
        "ok": ok,
        "workdir": str(workdir) if workdir else None,
        "steps": [{"title": r.title, "status": r.status, "detail": r.detail} for r in results],
    }
    if ok:
        where = f"; files kept in {workdir}" if workdir else ""
        text = f"demo OK: signed, verified offline, and tampered copies rejected{where}"
    else:
        text = "demo FAILED (see the step above)"
    _common.emit(args, obj, text)
    return _common.EXIT_OK if ok else _common.EXIT_REJECTED
