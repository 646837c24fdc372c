"""Fuzz the DER reader (crypto/der.py): every element, integer and OID it walks."""

from __future__ import annotations

from _harness import checked, run


def _walk(data: bytes) -> None:
    from bpfsign.crypto import der

    stack = [der.read(data)]
    while stack:
        el = stack.pop()
        if el.constructed:
            stack.extend(el.iter_children())
        elif el.tag == der.INTEGER:
            der.decode_integer(el)
        elif el.tag == der.OID:
            der.oid_to_str(el.content)
        el.raw  # noqa: B018 - the property slices; it must not fail


one_input = checked(_walk)

if __name__ == "__main__":
    run("fuzz_der")
