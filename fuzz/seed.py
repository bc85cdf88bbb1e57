#!/usr/bin/env python3
"""Seed the fuzz corpora from the golden vectors (../shared/vectors, read-only).

Usage: seed.py VECTORS_DIR CORPUS_DIR
Writes CORPUS_DIR/<target>/<name> files; existing corpus entries are kept.
"""
import json
import pathlib
import struct
import sys

vectors = pathlib.Path(sys.argv[1])
corpus = pathlib.Path(sys.argv[2])


def put(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


PREFIX = {"cupsUri": 1, "tcUri": 1, "cupsCred": 2, "tcCred": 2, "sig": 4, "update": 4}

for req in sorted((vectors / "requests").glob("*.json")):
    if req.name == "index.json":
        continue
    put("request_decode", req.stem, req.read_bytes())
    put("roundtrip", "req-" + req.stem, req.read_bytes())

for eui in [b"16:c001:ff10:a235", b"::1", b"::ffff:1", b"1234::", b"0016c001ff10a235",
            b"00-16-C0-01-FF-10-A2-35", b"00:16:c0:01:ff:10:a2:35"]:
    put("eui", eui.decode().replace(":", "_"), eui)

for man in sorted((vectors / "responses").glob("*.json")):
    m = json.loads(man.read_text())
    body = (vectors / "responses" / m["file"]).read_bytes()
    stem = man.stem
    for t in ("response_decode", "response_split", "roundtrip", "station"):
        put(t, stem, body)
    for seg in m.get("layout", []):
        name = seg["segment"]
        start = seg["length_field_offset"] + PREFIX[name]
        data = body[start:start + seg["length"]]
        if name in ("cupsCred", "tcCred") and data:
            put("cred", f"{stem}-{name}", data)
        if name == "sig" and len(data) > 4:
            put("sig_der", stem, data[4:])
print(f"seeded {sum(1 for _ in corpus.rglob('*') if _.is_file())} corpus files in {corpus}")
