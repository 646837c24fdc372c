"""Fuzz the light-skeleton header reader: bytes check, parser (strict and lenient), writer."""

from __future__ import annotations

from _harness import checked, run


def _parse(data: bytes) -> None:
    from bpfsign.skel import skeleton

    text = skeleton.decode_text(data, path="fuzz.lskel.h")
    skeleton.sniff(text)
    for lenient in (False, True):
        try:
            skel = skeleton.parse(text, path="fuzz.lskel.h", lenient=lenient)
        except Exception as exc:
            import bpfsign

            if not isinstance(exc, bpfsign.Error):
                raise
            continue
        assert skel.render() == text, "parse -> render must give the same text"
        from bpfsign.skel import globaldata, scheme

        scheme.audit(skel)
        for spec in skel.maps:
            if spec.section is not None:
                globaldata.section_layout(spec, skel.name)


one_input = checked(_parse)

if __name__ == "__main__":
    run("fuzz_skeleton", default_max_len=16384)
