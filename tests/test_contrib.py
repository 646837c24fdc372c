"""The systemd unit in contrib/ runs real bpfsign command lines: each parses with the CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from bpfsign.cli import build_parser

CONTRIB = Path(__file__).resolve().parents[1] / "contrib"


def _env(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        m = re.match(r"^\s*(?:Environment=)?([A-Z_]+)=(.*)$", line)
        if m:
            env[m[1]] = shlex.split(m[2])[0] if m[2].startswith('"') else m[2]
    return env


def test_unit_command_lines_parse() -> None:
    unit = (CONTRIB / "bpfsign-enforce.service").read_text()
    defaults = (CONTRIB / "bpfsign.default").read_text()
    commented = "\n".join(ln.lstrip("#") for ln in defaults.splitlines() if "ARGS=" in ln)
    parser = build_parser()
    execs = re.findall(r"^Exec\w+=-?(\S+) (.*)$", unit, re.M)
    assert [e[0] for e in execs] == ["/usr/local/bin/bpfsign"] * 3
    seen = set()
    for env in (_env(unit), _env(defaults), _env(commented)):
        for _, args in execs:
            line = args.replace("${BPFSIGN_PIN}", env.get("BPFSIGN_PIN", "/sys/fs/bpf/bpfsign"))
            line = line.replace("$BPFSIGN_ENFORCE_ARGS", env["BPFSIGN_ENFORCE_ARGS"])
            ns = parser.parse_args(shlex.split(line))
            assert ns.command == "enforce"
            seen.add((ns.pin, ns.off, ns.audit, ns.allow_keyring))
    assert ("/sys/fs/bpf/bpfsign", None, True, "0,1") in seen and (
        "/sys/fs/bpf/bpfsign",
        None,
        False,
        "0,1",
    ) in seen
