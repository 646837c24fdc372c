"""A real SoftHSM2 token in a temporary directory, for the PKCS#11 tests and benchmark.

    token = softhsm_token(tmp_dir, "bpfsign-test")   # sets SOFTHSM2_CONF for this process
    token.uri("signer")  # 'pkcs11:token=bpfsign-test;object=signer?pin-source=file:...'

SoftHSM2 reads ``SOFTHSM2_CONF`` once, when the module is initialised, so a
process uses one token directory: create it before the first PKCS#11 call.
Tokens are selected by label, never by slot (init renumbers the slot).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "4711-pin"
SO_PIN = "12345678"


def softhsm_missing() -> str | None:
    """Why SoftHSM2 cannot be used here, or None."""
    if shutil.which("softhsm2-util") is None or not os.path.exists(MODULE):
        return "SoftHSM2 is not installed (apt-get install softhsm2; scripts/setup.sh does)"
    try:
        import pkcs11  # noqa: F401
    except ModuleNotFoundError:
        return "python-pkcs11 is not installed (pip install -e '.[dev]')"
    return None


@dataclass(frozen=True)
class Token:
    label: str
    conf: Path
    pin_file: Path

    def uri(self, label: str, *, extra: str = "", pin: bool = True) -> str:
        query = f"?pin-source=file:{self.pin_file}" if pin else ""
        return f"pkcs11:token={self.label};object={label}{extra}{query}"

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            ["softhsm2-util", *args],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "SOFTHSM2_CONF": str(self.conf)},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"softhsm2-util {args[0]} failed: {proc.stderr or proc.stdout}")
        return proc.stdout

    def import_key(self, key_pem: Path, label: str, key_id: str) -> None:
        """Import a PKCS#8 PEM private key (softhsm2-util --import)."""
        self.run("--import", str(key_pem), "--token", self.label, "--label", label,
                 "--id", key_id, "--pin", PIN)  # fmt: skip


def softhsm_token(workdir: Path, label: str = "bpfsign-test") -> Token:
    """Initialise a token in ``workdir``/tokens and point this process at it."""
    tokens = workdir / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = workdir / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )
    pin_file = workdir / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    os.environ["SOFTHSM2_CONF"] = str(conf)
    token = Token(label, conf, pin_file)
    token.run("--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", PIN)
    return token
