"""Where a signing key comes from: a key file or a PKCS#11 token (``pkcs11:`` URI).

The CLI's ``sign`` calls :func:`open_signer` with what the user passed; library
users can call it too. Secrets (passphrases, PINs) come from, in this order:

* key files: ``passphrase_file`` (first line), ``passphrase_env`` (a variable
  name), ``$BPFSIGN_KEY_PASSPHRASE``, then a prompt when stdin is a terminal;
  they are asked for only when the key file's structure says it is encrypted;
* tokens: the URI's ``pin-value`` or ``pin-source``, ``pin_env`` (a variable
  name), ``$BPFSIGN_PKCS11_PIN``, then a prompt when stdin is a terminal.

A key file that its group or others can read is refused unless
``insecure_key_permissions`` is set. No secret is ever printed or put in an
error message.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from ..errors import InputError
from .signer import Signer

#: Default environment variable holding the passphrase of an encrypted key file.
PASSPHRASE_ENV = "BPFSIGN_KEY_PASSPHRASE"
#: Default environment variable holding a PKCS#11 token's user PIN.
PIN_ENV = "BPFSIGN_PKCS11_PIN"


def is_pkcs11_uri(key: str) -> bool:
    return key.startswith("pkcs11:")


def read_secret_file(path: str, what: str) -> bytes:
    """The first line of ``path`` without its line ending (like openssl's ``file:``)."""
    try:
        with open(path, "rb") as fh:
            line = fh.readline(4096)  # a secret is one short line, even in /dev/zero
    except FileNotFoundError:
        raise InputError(f"{what} file not found", path=path) from None
    except IsADirectoryError:
        raise InputError(f"{what} file is a directory", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read the {what} file: {exc.strerror}", path=path) from None
    return line.rstrip(b"\r\n")


def secret_from_env(name: str, what: str) -> bytes:
    """The value of environment variable ``name``; an unset variable is an error."""
    value = os.environb.get(name.encode()) if name else None
    if value is None:
        raise InputError(f"environment variable {name!r} (the {what}) is not set")
    return value


def tty_prompt(prompt: str) -> bytes | None:
    """Ask on the terminal (no echo) when stdin is one; None otherwise."""
    if not sys.stdin.isatty():
        return None
    import getpass

    return getpass.getpass(prompt).encode()


def _file_passphrase(
    key: str, passphrase_file: str | None, passphrase_env: str | None
) -> bytes | Callable[[], bytes | None]:
    if passphrase_file is not None:
        return read_secret_file(passphrase_file, "passphrase")
    if passphrase_env is not None:
        return secret_from_env(passphrase_env, "key passphrase")

    def ask() -> bytes | None:  # only called for an encrypted key
        value = os.environb.get(PASSPHRASE_ENV.encode())
        if value is not None:
            return value
        return tty_prompt(f"Passphrase for {key}: ")

    return ask


def open_signer(
    key: str,
    cert: str | None = None,
    *,
    passphrase_file: str | None = None,
    passphrase_env: str | None = None,
    insecure_key_permissions: bool = False,
    pin_env: str | None = None,
) -> Signer:
    """A ``Signer`` for ``key``: a key file (with ``cert`` required) or a ``pkcs11:`` URI
    (``cert`` optional: without it the token's certificate with the key's label/id is used).
    """
    if is_pkcs11_uri(key):
        if passphrase_file is not None or passphrase_env is not None:
            raise InputError(
                "a passphrase is for key files; a token's PIN comes from the URI (pin-source=, "
                "pin-value=), an environment variable, $BPFSIGN_PKCS11_PIN or a prompt"
            )
        from . import pkcs11

        return pkcs11.Pkcs11Signer.open(key, cert=cert, pin_env=pin_env)
    if pin_env is not None:
        raise InputError("a PIN variable is for pkcs11: URIs; a key file takes a passphrase")
    if cert is None:
        raise InputError("a key file needs its certificate file", path=key)
    from .keys import FileSigner

    return FileSigner.from_files(
        key,
        cert,
        password=_file_passphrase(key, passphrase_file, passphrase_env),
        check_permissions=not insecure_key_permissions,
    )
