#!/usr/bin/env python3
"""A scripted stand-in for the Basics Station binary, used ONLY to exercise the hil harness
(provisioning, process handling, log following, audit correlation) on machines without a
real station. It speaks real CUPS over real TLS to the real cups-server and prints log lines
in the station's format (src/log.c) with the station's message texts (src/cups.c). It has
no TC engine, no signature checks and no update runner: scenarios needing those are run
against a real station only.

Usage (the station's own flags): station.py --home DIR --temp DIR --log-file - ...
"""
import base64
import datetime
import http.client
import json
import os
import ssl
import struct
import sys
import tempfile
import time
import zlib


def log(mod, lvl, msg):
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.") + "%03d" % (now.microsecond // 1000)
    sys.stderr.write("%s [%s:%s] %s\n" % (stamp, mod, lvl, msg))
    sys.stderr.flush()


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def set_crc(home, base):
    crc = 0
    for ext in ("trust", "crt", "key"):
        data = read(os.path.join(home, base + "." + ext)) or b""
        crc = zlib.crc32(data if data else b"\0\0\0\0", crc)
    return crc


def span(text, default):
    if not text:
        return default
    unit = text[-1]
    n = int(text[:-1])
    return n * {"s": 1, "m": 60, "h": 3600}.get(unit, 1)


def der_len(blob, off):
    """Length of the DER element at off (short form or 30 82 hh ll)."""
    if blob[off + 1] == 0x82:
        return 4 + (blob[off + 2] << 8 | blob[off + 3])
    return 2 + blob[off + 1]


def store_blob(home, base, blob):
    t = der_len(blob, 0)
    trust, rest = blob[:t], blob[t:]
    if rest[:4] == b"\0\0\0\0":
        cert, key = b"", rest[4:]
        if key == b"\0\0\0\0":
            key = b""
    else:
        c = der_len(rest, 0)
        cert, key = rest[:c], rest[c:]
    for ext, data in (("trust", trust), ("crt", cert), ("key", key)):
        with open(os.path.join(home, base + "." + ext), "wb") as f:
            f.write(data)


def pem(kind, der):
    b64 = base64.encodebytes(der).decode().replace("\n", "")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (kind, "\n".join(lines), kind)


def main():
    args = sys.argv[1:]
    home = args[args.index("--home") + 1] if "--home" in args else os.getcwd()
    conf = json.loads(read(os.path.join(home, "station.conf")))["station_conf"]
    resync = span(conf.get("CUPS_RESYNC_INTV"), 60)
    oksync = span(conf.get("CUPS_OKSYNC_INTV"), 86400)
    router = conf["routerid"]
    log("SYS", "INFO", "Station EUI : %s" % router)
    log("TCE", "INFO", "Starting TC engine")
    log("TCE", "ERRO", "No TC URI configured")
    tries = 0
    delay = 0
    sets = (("", "cups"), ("-bak", "cups-bak"), ("-boot", "cups-boot"))
    cur = 0
    while True:
        log("CUP", "INFO", "Starting a CUPS session in %d seconds." % delay)
        time.sleep(delay)
        tries += 1
        suffix, base = sets[cur]
        uri = (read(os.path.join(home, base + ".uri")) or b"").decode().strip()
        if not uri:
            log("CUP", "ERRO", "No CUPS%s URI configured" % suffix)
            cur = (cur + 1) % len(sets)
            delay = 0
            continue
        log("CUP", "INFO", "Connecting to CUPS%s ... %s (try #%d)" % (suffix, uri, tries))
        regular_uri = (read(os.path.join(home, "cups.uri")) or b"").decode().strip() or None
        tc_uri = (read(os.path.join(home, "tc.uri")) or b"").decode().strip() or None
        version = (read(os.path.join(home, "version.txt")) or b"").decode().strip() or None
        keys = []
        n = 0
        while read(os.path.join(home, "sig-%d.key" % n)) is not None:
            keys.append(zlib.crc32(read(os.path.join(home, "sig-%d.key" % n))))
            n += 1
        body = json.dumps({
            "router": router, "cupsUri": regular_uri, "tcUri": tc_uri,
            "cupsCredCrc": set_crc(home, "cups"), "tcCredCrc": set_crc(home, "tc"),
            "station": "2.0.6(standin/hil) 2026-11-26 00:00:00", "model": "linux",
            "package": version, "keys": keys,
        }, separators=(",", ":")).encode()
        hostport = uri.split("://", 1)[1]
        host, port = hostport.rsplit(":", 1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=read(os.path.join(home, base + ".trust")))
        with tempfile.TemporaryDirectory() as tmp:
            crt = read(os.path.join(home, base + ".crt")) or b""
            key = read(os.path.join(home, base + ".key")) or b""
            if crt:
                cp, kp = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
                with open(cp, "w") as f:
                    f.write(pem("CERTIFICATE", crt))
                with open(kp, "w") as f:
                    f.write(pem("EC PRIVATE KEY", key))
                ctx.load_cert_chain(cp, kp)
            try:
                conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
                conn.request("POST", "/update-info", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                conn.close()
            except (OSError, http.client.HTTPException):
                log("CUP", "ERRO", "CUPS connect failed - URI: %s" % uri)
                log("CUP", "INFO", "Interaction with CUPS failed - retrying in %ds" % resync)
                delay = resync
                continue
        if status != 200:
            log("any", "VERB", "Failed to retrieve TCURI from CUPS: (%d) %s" % (status, resp.reason))
            log("CUP", "INFO", "Interaction with CUPS failed - retrying in %ds" % resync)
            cur = (cur + 1) % len(sets)
            delay = resync
            continue
        cur = 0
        off = 0
        segs = {}
        for name, fmt in (("cupsUri", "<B"), ("tcUri", "<B"), ("cupsCred", "<H"),
                          ("tcCred", "<H"), ("sig", "<I"), ("update", "<I")):
            (n,) = struct.unpack_from(fmt, data, off)
            off += struct.calcsize(fmt)
            segs[name] = data[off:off + n]
            off += n
        if segs["cupsUri"]:
            with open(os.path.join(home, "cups.uri"), "wb") as f:
                f.write(segs["cupsUri"])
            log("CUP", "INFO", "CUPS URI updated: %s" % segs["cupsUri"].decode())
        if segs["tcUri"]:
            with open(os.path.join(home, "tc.uri"), "wb") as f:
                f.write(segs["tcUri"])
            log("CUP", "INFO", "TC URI updated: %s" % segs["tcUri"].decode())
        for name, base, label in (("cupsCred", "cups", "CUPS"), ("tcCred", "tc", "TC")):
            if segs[name]:
                log("CUP", "INFO", "%s Credentials segment (%d bytes)" % (label, len(segs[name])))
                store_blob(home, base, segs[name])
                log("CUP", "INFO", "%s credentials updated (%d bytes)" % (label, len(segs[name])))
        if segs["update"]:
            log("CUP", "INFO", "Update received (%d bytes)" % len(segs["update"]))
        tc_changed = [w for w, s in (("uri", "tcUri"), ("credentials", "tcCred")) if segs[s]]
        cups_changed = [w for w, s in (("uri", "cupsUri"), ("credentials", "cupsCred")) if segs[s]]
        if tc_changed:
            log("CUP", "INFO", "CUPS provided TC updates (%s) - restarting TC engine" % "/".join(tc_changed))
            log("TCE", "INFO", "Terminating TC engine")
            # No TC engine here: only the log lines of its start (the connection is not tried).
            log("TCE", "INFO", "Starting TC engine")
            tc_now = (read(os.path.join(home, "tc.uri")) or b"").decode().strip()
            log("TCE", "INFO", "Connecting to INFOS: %s" % tc_now)
        if cups_changed:
            log("CUP", "INFO", "CUPS provided CUPS updates (%s) - reconnecting in %ds" % ("/".join(cups_changed), resync))
            delay = resync
        else:
            quiet = not (tc_changed or segs["update"])
            log("CUP", "INFO", "Interaction with CUPS done%s - next regular check in %ds" % (" (no updates)" if quiet else "", oksync))
            delay = oksync
        tries = 0


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
