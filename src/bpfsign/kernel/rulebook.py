"""The signature path's rules as data: what each checks, its errno, log line and fix.

One :class:`Rule` per check, in the kernel's order, each with where the fact
comes from (measured on 7.3.4 or 6.18.44, or from source). The engine
(kernel/rules.py) runs them; :func:`hint` maps a real kernel's refusal back to
the rule whose log line it printed, so errors from the syscall backend carry
the same fix as the model's.
"""

from __future__ import annotations

import errno as _e

from ..errors import ENOTSUPP, errno_name

__all__ = ["PKCS7_HINTS", "RULES", "Rule", "hint"]

#: signature_size cap: KMALLOC_MAX_CACHE_SIZE on x86-64 (docs/kernel.md §12.8)
MAX_SIGNATURE_SIZE = 8192
#: insns ‖ folded map values, at most 2^24 - 1 bytes (docs/kernel.md §6.2 step 2.3)
MAX_SIGNED_PAYLOAD = (1 << 24) - 1
#: distinct maps one program may use (docs/kernel.md §12.8; duplicates count once)
MAX_USED_MAPS = 64
MAX_INSNS = 1_000_000

LOG_KEYRING = "cannot resolve signing keyring with keyring_id {keyring_id}"
LOG_NOT_BPF = "fd {fd} is not pointing to valid bpf_map or btf"
LOG_NOT_MAP = "fd {fd} is not pointing to valid bpf_map"
LOG_BY_FD = "signed program cannot reference a map by fd, only via fd_array index"
LOG_BTF = "signed program cannot bind any BTF"
LOG_USED_MAPS = "The total number of maps per program has reached the limit of 64"
LOG_FROZEN = "signed program metadata map '{name}' must be frozen"
LOG_EXCLUSIVE = "signed program metadata map '{name}' must be exclusive"
LOG_ARRAY = "signed program metadata map '{name}' must be an array"
LOG_ONE_ENTRY = "failed to read signed metadata map '{name}': -524"
LOG_EXCL = "program's hash doesn't match map's excl_prog_hash"
LOG_PAYLOAD = "signed payload too large: {size} bytes"
LOG_SIG_FAILED = "signature verification failed: -{errno}"
LOG_CNT0 = "signed program must bind maps via a continuous fd_array (fd_array_cnt)"
LOG_OFF32 = "cannot access ptr member ops with moff 32 in struct bpf_map with off 32 size 4"
LOADER_FAILED = "error returned by loader prog"

_CONVERT = "convert it to the loadtime scheme, which signs the loader and its data together"
PKCS7_HINTS = {
    _e.ENOKEY: "the signer's certificate is not in that keyring (a key's own serial is not a "
    "keyring: pass the keyring's serial or -3); add it with `bpfsign keyring add CERT`",
    _e.EKEYREJECTED: "the signature does not match the loader and its data (tampered or wrong "
    "scheme): re-sign it with `bpfsign sign`",
    _e.EBADMSG: "the signature is not a detached PKCS#7/CMS SignedData the kernel can parse: "
    "re-sign it with `bpfsign sign`",
    _e.ENOPKG: "the kernel cannot verify this algorithm (RSA-PSS, SHA-3 without its module): "
    "re-sign with SHA-256 and an RSA PKCS#1 v1.5 or ECDSA key",
    _e.EINVAL: "the signature's structure is not one the kernel accepts: re-sign it with "
    "`bpfsign sign`",
}


class Rule:
    """One check: what it looks at, the errno and log line when it fails, the fix."""

    __slots__ = ("errno", "hint", "id", "log", "provenance", "title")

    def __init__(self, id: str, title: str, errno: int, log: str, hint: str,
                 provenance: str) -> None:  # fmt: skip
        self.id = id
        self.title = title
        self.errno = errno
        self.log = log  # a template: {name}, {fd}, {size}, {errno}, {keyring_id}
        self.hint = hint
        self.provenance = provenance

    def __repr__(self) -> str:
        return f"<Rule {self.id}: {errno_name(self.errno)}>"


#: The checks, in the kernel's order (docs/kernel.md §6.1, §6.2, §13 rows cited).
RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("insn_cnt", "instruction count", _e.E2BIG, "",
             "a program has 1 to 1,000,000 instructions", "from source (§6.1 step 2)"),
        Rule("signature_size", "signature size", _e.EINVAL, "",
             "the kernel caps signatures at 8192 bytes (KMALLOC_MAX_CACHE_SIZE): sign with "
             "fewer or smaller embedded certificates (e.g. without the chain)",
             "measured on 7.3.4 and 6.18.44 (§13 row 29)"),
        Rule("signature_empty", "signature present", _e.EINVAL, "",
             "the signature is empty (signature_size 0): sign the loader with `bpfsign sign`",
             "measured on 7.3.4 (§13 row 53)"),
        Rule("keyring", "keyring", _e.EINVAL, LOG_KEYRING,
             "check keyring_id: it must be 0, 1, 2, -3 or the serial of an existing KEYRING",
             "measured on 7.3.4; 6.18.44 gives the same EINVAL with an empty log (§5, §13 row 2)"),
        Rule("verification_support", "signature support", _e.EOPNOTSUPP, "",
             "this kernel lacks signature verification (CONFIG_SYSTEM_DATA_VERIFICATION is not "
             "set): load it on a kernel built with it (e.g. Debian's Linux 7.x), or without its "
             "signature", "measured on 6.18.44 (§13 row 1)"),
        Rule("fd_array_entry", "fd_array entry is a BPF object", _e.EBADF, LOG_NOT_BPF,
             "fd_array must hold open map fds: an fd that is not open gives EBADF, an open fd "
             "that is not a map or BTF EINVAL; fd_array_cnt must not exceed the array (entries "
             "past it are whatever memory follows)", "measured on 7.3.4"),
        Rule("btf", "no BTF in a signed fd_array", _e.EACCES, LOG_BTF,
             "a signed program cannot bind BTF objects: drop BTF fds from fd_array (or from "
             "its first fd_array_cnt entries)", "measured on 7.3.4"),
        Rule("frozen", "metadata map is frozen", _e.EPERM, LOG_FROZEN,
             "freeze the metadata map (BPF_MAP_FREEZE) after writing it and before the load; a "
             "writable mmap of it makes the freeze fail (EBUSY)",
             "measured on 7.3.4 (§13 row 16)"),
        Rule("exclusive", "metadata map is exclusive", _e.EPERM, LOG_EXCLUSIVE,
             "create the metadata map with excl_prog_hash = SHA-256(loader insns) (the header's "
             "opts_excl_hash, which `bpfsign sign` writes)", "measured on 7.3.4 (§13 row 17)"),
        Rule("array", "metadata map is an ARRAY", _e.EINVAL, LOG_ARRAY,
             "a metadata map must be a plain BPF_MAP_TYPE_ARRAY", "measured on 7.3.4 (§13 row 25)"),
        Rule("one_entry", "metadata map has one entry", ENOTSUPP, LOG_ONE_ENTRY,
             "a metadata map must have max_entries 1", "measured on 7.3.4 (§13 row 51)"),
        Rule("excl_hash", "exclusive hash equals the program digest", _e.EACCES, LOG_EXCL,
             "the loader map is exclusive to another program hash; an unsigned load must keep "
             "fd_array_cnt = 0, and excl_prog_hash must equal SHA-256(loader insns)",
             "measured on 7.3.4 and 6.18.44 (§13 rows 11, 18, 20)"),
        Rule("used_maps", "at most 64 distinct maps", _e.E2BIG, LOG_USED_MAPS,
             "a program may use at most 64 distinct maps (the same fd listed twice counts once)",
             "measured on 7.3.4"),
        Rule("payload_size", "signed payload size", _e.E2BIG, LOG_PAYLOAD,
             "insns and metadata map values together must stay below 16 MiB: shrink the "
             "loader's data", "measured on 7.3.4 (§13 row 28)"),
        Rule("signature", "PKCS#7 signature", _e.EKEYREJECTED, LOG_SIG_FAILED,
             PKCS7_HINTS[_e.EKEYREJECTED], "measured on 7.3.4 (§12, §13 rows 3-10, 34-45)"),
        Rule("bind_after_signature", "no map bound after the signature", _e.EACCES, LOG_CNT0,
             "a 6.18-style (in-loader) signed loader on a load-time kernel: its signature does "
             "not cover the maps it uses; " + _CONVERT, "measured on 7.3.4 (§13 row 49)"),
        Rule("bind_by_fd", "no map named by fd in a signed program", _e.EINVAL, LOG_BY_FD,
             "a signed program names its maps by fd_array index (BPF_PSEUDO_MAP_IDX), never by fd "
             "(BPF_PSEUDO_MAP_FD), as bpftool's light-skeleton loaders do",
             "measured on 7.3.4"),
        Rule("bind", "map referenced by an instruction", _e.EBADF, LOG_NOT_MAP,
             "an ld_imm64 names an fd or an fd_array index that is not an open map",
             "measured on 7.3.4 (an fd that is not open)"),
        Rule("bpf_map_layout", "struct bpf_map read matches this kernel", _e.EACCES, LOG_OFF32,
             "the loader reads struct bpf_map at a 6.18-only offset (bpftool <= 7.8 -S "
             "exclusivity check); " + _CONVERT, "measured on 7.3.4 (§13 row 50)"),
        Rule("loader_exclusive", "loader's own exclusivity check", _e.EINVAL, "",
             "the loader map is not exclusive (no opts_excl_hash), so the 6.18 loader's "
             "exclusivity check returns -EINVAL at run time: re-sign it with `bpfsign sign`",
             "measured on 6.18.44 (§13 row 23)"),
        Rule("loader_hash", "loader's own metadata hash check", _e.EINVAL, "",
             "the 6.18 loader compares SHA-256(data) with the hash baked into it, after user "
             "space asked for the map hash: re-sign it with `bpfsign sign`",
             "measured on 6.18.44 and 7.3.4 (§13 rows 23, 56)"),
    )
}  # fmt: skip


def hint(err: int, log: str, *, signature_size: int = 0) -> str:
    """The fix for a real kernel's PROG_LOAD refusal: the rule whose log line it printed.

    The attr is checked before the log: an empty-log EINVAL has several causes.
    """
    if err == _e.EINVAL and signature_size > MAX_SIGNATURE_SIZE:
        return f"the signature is {signature_size} bytes; " + RULES["signature_size"].hint
    for rule in RULES.values():
        if rule.log and _matches(rule.log, log):
            return PKCS7_HINTS.get(err, rule.hint) if rule.id == "signature" else rule.hint
    if err == _e.EINVAL and not log and signature_size:  # only a signed load reads keyring_id
        return RULES["keyring"].hint
    if err == _e.EOPNOTSUPP:
        return RULES["verification_support"].hint
    return PKCS7_HINTS.get(err, "") if err != _e.EINVAL else ""


def _matches(template: str, log: str) -> bool:
    """Does ``log`` contain a line produced by ``template``?"""
    head, _, rest = template.partition("{")
    tail = rest.partition("}")[2] if rest else ""
    return any(line.strip().startswith(head) and line.rstrip().endswith(tail)
               for line in log.splitlines()) if head else False  # fmt: skip
