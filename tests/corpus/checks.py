"""The corpus checks, shared by tests/test_corpus.py, tests/vm/test_vm_corpus.py and
tests/corpus/report.py. Uses only bpfsign's public API (``import bpfsign``) and its
CLI (``python -m bpfsign``); the C side is refload.py.

    python tests/corpus/checks.py --load-all [-o FILE]   # load parity of every header,
                                                         # one JSON object (used in the guest)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import refload  # noqa: E402

KEYS = HERE.parent / "fixtures" / "keys"
KEY = KEYS / "TEST-ONLY-lskel-signing.key.pem"
CERT = KEYS / "TEST-ONLY-lskel-signing.cert.pem"

HEADERS = refload.headers()


def kind(h: Path) -> str:
    """'v71', 'v72', 'v72.signed', 'v73', 'v73.signed' or 'kernel'."""
    v = refload.variant(h)
    return f"{v}.signed" if ".signed." in h.name else v


def program(h: Path) -> str:
    return h.name.split(".", 1)[0]


def is_signed(h: Path) -> bool:
    return ".signed." in h.name


def cli(*args: str | Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "bpfsign", *map(str, args)], capture_output=True, text=True, check=False
    )
    if check and r.returncode != 0:
        raise AssertionError(f"bpfsign {' '.join(map(str, args))}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


@cache
def inspect(h: Path) -> dict[str, Any]:
    r = cli("inspect", "--json", h, check=True)
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def _sign(paths: list[Path], outdir: Path) -> dict[str, Any]:
    """Copy ``paths`` into ``outdir`` and sign them all there (in place) in one run."""
    for p in paths:
        shutil.copyfile(p, outdir / p.name)
    r = cli("sign", "--json", "--key", KEY, "--cert", CERT, *(outdir / p.name for p in paths))
    try:
        docs = json.loads(r.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"bpfsign sign: exit {r.returncode}, no JSON\n{r.stdout}\n{r.stderr}") from None
    return {Path(d["file"]).name: {**d, "exit": r.returncode, "stderr": r.stderr} for d in docs}


@cache
def signed_outputs() -> tuple[Path, dict[str, Any]]:
    """Every corpus header signed by ``bpfsign sign`` (one run): (directory, per-file JSON)."""
    outdir = Path(tempfile.mkdtemp(prefix="bpfsign-corpus-signed-"))
    return outdir, _sign(HEADERS, outdir)


@cache
def verify(h: Path) -> dict[str, Any]:
    r = cli("verify", "--json", "--trust", CERT, h)
    docs = json.loads(r.stdout)
    return {**docs[0], "exit": r.returncode}


def counterpart(h: Path, k: str) -> Path:
    return h.with_name(f"{program(h)}.{k}.lskel.h")


# --- load parity -----------------------------------------------------------------


def bpfsign_load(h: Path) -> dict[str, Any]:
    """Load with bpfsign (signed headers signed, session keyring) and describe, or the error."""
    import bpfsign

    try:
        loaded = bpfsign.load_skeleton(h)
    except bpfsign.Error as exc:
        return {"ok": False, "errno": getattr(exc, "errno", None), "error": type(exc).__name__,
                "step": getattr(exc, "command", None), "message": str(exc).splitlines()[0]}
    except OSError as exc:  # not a bpfsign.Error: names neither map nor step
        return {"ok": False, "errno": exc.errno, "error": f"raw {type(exc).__name__}", "step": None,
                "message": str(exc)}
    try:
        return {"ok": True, **loaded.describe()}
    finally:
        loaded.close()


MAP_FIELDS = ("kernel_name", "type", "key_size", "value_size", "max_entries")
PROG_FIELDS = ("kernel_name", "type", "tag")


def parity(c: dict[str, Any], py: dict[str, Any]) -> list[str]:
    """Differences between the C reference's load and bpfsign's (empty: they agree)."""
    if not c["ok"]:
        if py["ok"]:
            return [f"C fails ({c['step']}, errno {c['errno']}) but bpfsign loads"]
        if py["errno"] != c["errno"]:
            return [f"both fail, errno differs: C {c['errno']} ({c['step']}), bpfsign {py['errno']} "
                    f"({py['error']}: {py['message']})"]
        return []
    if not py["ok"]:
        return [f"C loads but bpfsign fails: {py['error']} errno {py['errno']}: {py['message']}"]
    diffs = []
    cmaps = {m["name"]: m for m in c["maps"]}
    pmaps = {m["name"]: m for m in py["maps"]}
    if sorted(cmaps) != sorted(pmaps):
        diffs.append(f"maps differ: C {sorted(cmaps)}, bpfsign {sorted(pmaps)}")
    for name in sorted(set(cmaps) & set(pmaps)):
        for f in MAP_FIELDS:
            if cmaps[name].get(f) != pmaps[name].get(f):
                diffs.append(f"map {name}.{f}: C {cmaps[name].get(f)!r}, bpfsign {pmaps[name].get(f)!r}")
    cprogs = {p["name"]: p for p in c["progs"]}
    pprogs = {p["name"]: p for p in py["progs"]}
    if sorted(cprogs) != sorted(pprogs):
        diffs.append(f"progs differ: C {sorted(cprogs)}, bpfsign {sorted(pprogs)}")
    for name in sorted(set(cprogs) & set(pprogs)):
        for f in PROG_FIELDS:
            if cprogs[name].get(f) != pprogs[name].get(f):
                diffs.append(f"prog {name}.{f}: C {cprogs[name].get(f)!r}, bpfsign {pprogs[name].get(f)!r}")
    return diffs


def load_pair(h: Path, *, build: bool = True) -> dict[str, Any]:
    c = refload.run(h, build=build)
    py = bpfsign_load(h)
    return {"c": c, "bpfsign": py, "diffs": parity(c, py)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--load-all", action="store_true")
    ap.add_argument("--no-build", action="store_true", help="only run prebuilt references (guest)")
    ap.add_argument("-o", "--output")
    args = ap.parse_args(argv)
    if not args.load_all:
        ap.error("nothing to do")
    res = {"kernel": os.uname().release,
           "results": {h.name: load_pair(h, build=not args.no_build) for h in HEADERS}}
    text = json.dumps(res, indent=1, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
