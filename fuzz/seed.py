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

# The simulator's and the harness's parsers: a few well-formed inputs each.
put("ws_frame", "text", b"\x81\x05hello")
put("ws_frame", "masked", b"\x81\x85\x01\x02\x03\x04" + bytes(c ^ k for c, k in zip(b"hello", b"\x01\x02\x03\x04\x01")))
put("ws_frame", "len16", b"\x82\x7e\x01\x00" + bytes(256))
put("ws_frame", "close", b"\x88\x02\x03\xe8")
put("ws_handshake", "request", b"GET /router-info HTTP/1.1\r\nHost: localhost:6887\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
put("ws_handshake", "response", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
put("sim_http_response", "ok", b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n" + bytes(14))
put("sim_http_response", "forbidden", b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
put("lns_router_info", "id6", b'{"router":"16:c001:ff10:a235"}')
put("lns_router_info", "int", b'{"router":6231225870181541429}')
put("tc_client", "uri", b"wss://localhost:6887")
put("tc_client", "answer", b'{"router":"16:c001:ff10:a235","muxs":"muxs-::0","uri":"wss://localhost:6887/traffic/16:c001:ff10:a235"}')
put("tc_client", "token", b"Authorization: Bearer abc\n")
put("hil_station_log", "cups", b"2026-11-26 20:00:00.000 [CUP:INFO] Connecting to CUPS ... https://localhost:16050 (try #1)\n")
put("hil_audit_line", "audit", b'{"timestamp":"2026-11-26T20:00:00Z","level":"INFO","target":"audit","fields":{"message":"gateway registered","eui":"0016c001ff10a235"}}\n')
put("gateway_list", "list", b'[{"eui":"0016c001ff10a235","cups_auth":"cert","tc_mode":"cert"}]')
print(f"seeded {sum(1 for _ in corpus.rglob('*') if _.is_file())} corpus files in {corpus}")
