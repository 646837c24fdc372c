"""Sign a light skeleton under the load-time scheme, verify it offline, load it.

    .venv/bin/python examples/sign_verify_load.py [SKEL.lskel.h]

Without an argument it signs the example skeleton bundled with bpfsign (the
one ``bpfsign demo`` uses), so it runs from any directory. A bpftool -S (6.18-style) header is converted on the way; an unsigned-mode
loader is signed with a warning naming the maps its ctx can still change.
The load step needs root; on a kernel without CONFIG_SYSTEM_DATA_VERIFICATION
it reports that instead of loading.
"""

from __future__ import annotations

import sys
import tempfile
from importlib import resources
from pathlib import Path

import bpfsign
from bpfsign.crypto import keys
from bpfsign.skel import scheme, skeleton

#: bpftool's -S output for a small counter program, shipped inside the bpfsign package
BUNDLED = resources.files("bpfsign") / "data" / "example.lskel.h"


def main(path: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        pair = keys.generate("rsa", subject="example signer")
        signer = bpfsign.FileSigner(pair.key, pair.cert_der)

        signed, report = scheme.sign(skeleton.load(path), signer, scheme="loadtime")
        for warning in report.warnings:
            print("warning:", warning)
        if report.converted is not None:
            print("converted:", report.converted)
        out = Path(tmp) / Path(path).name
        signed.save(out)  # atomic and byte-exact

        trust = bpfsign.TrustStore()
        trust.add(pair.cert_der)  # the session keyring (-3), as `bpfsign keyring add` does
        verdict = bpfsign.verify_skeleton(skeleton.load(out), trust, kernel="7.3", keyring_id=-3)
        print(
            f"offline: the kernel would load it ({verdict.scheme}, {verdict.payload_size} bytes signed)"
        )

        from bpfsign.kernel import keyring

        added = keyring.add_certificate(pair.cert_der)  # the session keyring (-3)
        try:
            with bpfsign.load_skeleton(out, keyring_id=-3) as loaded:
                print("loaded:", loaded.describe())
        except bpfsign.UnsupportedFeature as exc:
            print("not loaded:", exc)
        except bpfsign.Error as exc:
            print("not loaded:", exc)
            return 1
        finally:
            keyring.remove_key(added.serial, keyring=added.keyring)  # leave no throwaway key behind
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(BUNDLED)))
