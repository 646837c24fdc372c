"""``bpfsign inspect``: what a light skeleton carries and what its loader does."""

from __future__ import annotations

from . import _common
from ._options import options

TYPE_CHECKING = False  # argparse/typing only for the type checker (CLI start-up is timed)
if TYPE_CHECKING:
    from typing import Any


@options
class InspectOptions:
    skeleton: str
    disasm: bool = False
    lenient: bool = False
    json: bool = False


def register(sub: Any) -> None:
    p = sub.add_parser(
        "inspect",
        help="show what a light skeleton carries and what its loader does",
        description="Print a light skeleton's names, blob sizes and hashes, signing scheme, "
        "signer, loader features (in-loader hash check, exclusivity check, signed or unsigned "
        "mode) and ctx layout.",
    )
    p.add_argument(
        "skeleton", metavar="SKEL.lskel.h", help="light skeleton header (bpftool gen skeleton -L)"
    )
    p.add_argument("--disasm", action="store_true", help="also disassemble the loader program")
    p.add_argument(
        "--lenient",
        action="store_true",
        help="accept general C escapes in blob literals (hand-edited headers)",
    )
    _common.add_json(p)
    _common.set_command(p, InspectOptions, handle)


def handle(opts: InspectOptions) -> int:
    from ..skel import skeleton

    skel = skeleton.load(opts.skeleton, lenient=opts.lenient)
    rec = inspect_record(skel, disasm=opts.disasm)
    _common.emit(opts, rec, inspect_text(rec))
    return _common.EXIT_OK


def _describe_signature(signature: bytes) -> dict[str, Any]:
    """Who signed, as far as the CMS says (no trust decision here)."""
    from ..crypto import cms

    try:
        sd = cms.parse_signed_data(signature)
    except Exception as exc:  # a broken signature is a finding, not a crash
        return {"parsed": False, "error": str(exc)}
    out: dict[str, Any] = {
        "parsed": True,
        "version": sd.version,
        "detached": sd.detached,
        "certificates": len(sd.certificates),
        "signers": len(sd.signer_infos),
    }
    if sd.signer_infos:
        si = sd.signer_infos[0]
        out["sid"] = si.sid.kind
        out["key_id"] = si.key_id.hex()
        out["digest"] = si.digest_algorithm.name
        out["signature_algorithm"] = si.signature_algorithm.name
        out["signed_attributes"] = si.signed_attrs_raw is not None
    return out


def _ctx_layout(skel: Any, mode: str) -> list[dict[str, Any]]:
    from ..skel.skeleton import CTX_HEADER_SIZE

    # a signed-mode loader takes sizes and images from its (signed) blob, never the ctx
    given = "(ignored by this signed-mode loader)" if mode == "signed" else "(in)"
    rows: list[dict[str, Any]] = [
        {
            "offset": 0,
            "size": CTX_HEADER_SIZE,
            "field": "ctx (sz, flags, log_level, log_size, log_buf)",
        }
    ]
    for m in skel.maps:
        base = m.ctx_offset
        rows += [
            {"offset": base, "size": 4, "field": f"maps.{m.name}.map_fd (out)"},
            {"offset": base + 4, "size": 4, "field": f"maps.{m.name}.max_entries {given}"},
            {"offset": base + 8, "size": 8, "field": f"maps.{m.name}.initial_value {given}"},
        ]
    for p in skel.progs:
        rows.append(
            {
                "offset": skel.prog_fd_offset(p.index),
                "size": 4,
                "field": f"progs.{p.name}.prog_fd (out)",
            }
        )
    return rows


def inspect_record(skel: Any, *, disasm: bool = False) -> dict[str, Any]:
    from ..skel import insn, scheme

    a = scheme.audit(skel)
    block = a.hash_check
    rec: dict[str, Any] = {
        "file": skel.path,
        "name": skel.name,
        "style": skel.style,
        "endian": skel.endian,
        "insns": {
            "bytes": len(skel.insns),
            "count": skel.insn_count,
            "sha256": scheme.sha256(skel.insns).hex(),
        },
        "data": {"bytes": len(skel.data), "sha256": a.data_hash.hex()},
        "signed": skel.signature is not None,
        "signature": None,
        "excl_hash": None,
        "keyring_id_field": skel.has_keyring_field,
        "bpftool_literals": not (skel.layout and skel.layout.noncanonical),
        "scheme": a.scheme,
        "loader": {
            "hash_check": None,
            "exclusivity_check": a.exclusivity_check,
            "mode": a.mode,
            "ctx_overrides": [
                {"map": o.map, "field": o.field, "insn": o.insn} for o in a.overrides
            ],
            "copy_from_user": a.uses_copy_from_user,
        },
        "ctx_size": skel.ctx_size,
        "ctx_layout": _ctx_layout(skel, a.mode),
        "maps": [
            {
                "name": m.name,
                "index": m.index,
                "section": m.section,
                "initial_value_bytes": None if m.initial_value is None else len(m.initial_value),
                "initial_value_sha256": None
                if m.initial_value is None
                else scheme.sha256(m.initial_value).hex(),
                "mmap_size": m.mmap_size,
                "readonly": m.readonly,
            }
            for m in skel.maps
        ],
        "progs": [{"name": p.name, "index": p.index, "attach": p.attach} for p in skel.progs],
        "links": list(skel.links),
    }
    if skel.signature is not None:
        rec["signature"] = {
            "bytes": len(skel.signature),
            "sha256": scheme.sha256(skel.signature).hex(),
            "cms": _describe_signature(skel.signature),
        }
    if skel.excl_hash is not None:
        rec["excl_hash"] = {"hex": skel.excl_hash.hex(), "matches_insns": a.excl_hash_matches}
    if block is not None:
        rec["loader"]["hash_check"] = {
            "start": block.start,
            "length": block.length,
            "exclusivity_prefix": block.has_prefix,
            "hash_insns": list(block.hash_insns),
            "baked_hash": block.baked_hash.hex(),
            "matches_data": a.baked_hash_matches,
            "cleanup_targets": list(block.cleanup_targets),
        }
    if disasm:
        rec["disasm"] = insn.disasm(skel.insns, "big" if skel.endian == "big" else "little")
    return rec


def _mark(ok: bool | None) -> str:
    return "matches" if ok else "MISMATCH"


def inspect_text(rec: dict[str, Any]) -> str:
    lines = [
        f"{rec['file']}: light skeleton '{rec['name']}' ({rec['style']} style, {rec['endian']}-endian)",
        f"  insns      {rec['insns']['bytes']} bytes ({rec['insns']['count']} insns)  "
        f"sha256 {rec['insns']['sha256']}",
        f"  data       {rec['data']['bytes']} bytes  sha256 {rec['data']['sha256']}",
    ]
    sig = rec["signature"]
    if sig is None:
        lines.append("  signature  none (unsigned)")
    else:
        cms = sig["cms"]
        lines.append(f"  signature  {sig['bytes']} bytes  sha256 {sig['sha256']}")
        if not cms["parsed"]:
            lines.append(f"             not a CMS SignedData the kernel accepts: {cms['error']}")
        elif cms["signers"]:
            lines.append(
                f"             CMS v{cms['version']} SignedData"
                f"{', detached' if cms['detached'] else ', CONTENT EMBEDDED'}, "
                f"{cms['certificates']} certificate(s), {cms['signers']} signer(s); signer "
                f"{cms['sid']} {cms['key_id']}, {cms['digest']} with "
                f"{cms['signature_algorithm']}"
                f"{', signed attributes' if cms['signed_attributes'] else ''}"
            )
    if rec["excl_hash"] is not None:
        ex = rec["excl_hash"]
        lines.append(f"  excl_hash  {ex['hex']} ({_mark(ex['matches_insns'])} SHA-256(insns))")
    lines.append(f"  keyring_id field: {'yes' if rec['keyring_id_field'] else 'no'}")
    if not rec["bpftool_literals"]:
        lines.append("  note: some blob literals are not written the way bpftool writes them")
    loader = rec["loader"]
    hc = loader["hash_check"]
    if hc is None and sig is None:
        lines.append(
            "  scheme     unsigned; would be signed under loadtime (insns + data) by default"
        )
    elif hc is None:
        lines.append(
            "  scheme     loadtime (no in-loader hash check; signature covers insns + data)"
        )
    else:
        end = hc["start"] + hc["length"] - 1
        prefix = "with" if hc["exclusivity_prefix"] else "without"
        targets = "/".join(str(t) for t in hc["cleanup_targets"])
        note = "" if hc["cleanup_targets"] == [7] else " (libbpf 1.7.0 off-by-one)"
        lines.append(
            f"  scheme     inloader (6.18): hash check at insns {hc['start']}..{end} "
            f"({hc['length']} insns, {prefix} exclusivity prefix), goto-cleanup -> insn "
            f"{targets}{note}"
        )
        lines.append(
            f"             baked data hash {hc['baked_hash']} ({_mark(hc['matches_data'])} "
            "SHA-256(data))"
        )
    if loader["mode"] == "unsigned":
        maps = list(dict.fromkeys(o["map"] for o in loader["ctx_overrides"]))
        lines.append(
            "  mode       unsigned: honours ctx overrides (max_entries/initial_value) for "
            + ", ".join(maps)
        )
    elif loader["mode"] == "signed":
        lines.append("  mode       signed: ignores ctx overrides (the blob is authoritative)")
    else:
        lines.append("  mode       unknown (no maps)")
    lines.append(f"  ctx        {rec['ctx_size']} bytes")
    for row in rec["ctx_layout"]:
        lines.append(f"    {row['offset']:4d} +{row['size']:<2d} {row['field']}")
    for m in rec["maps"]:
        extra = ""
        if m["section"]:
            extra = f" section {m['section']}, image {m['initial_value_bytes']} bytes, mmap {m['mmap_size']}"
            extra += ", read-only" if m["readonly"] else ""
        lines.append(f"  map  {m['index']}: {m['name']}{extra}")
    for p in rec["progs"]:
        lines.append(
            f"  prog {p['index']}: {p['name']} (attach: {p['attach'] or 'no auto-attach code generated by bpftool'})"
        )
    if rec["links"]:
        lines.append(f"  links: {', '.join(rec['links'])}")
    if "disasm" in rec:
        lines.append("  loader program:")
        lines += [f"    {x}" for x in rec["disasm"]]
    return "\n".join(lines)
