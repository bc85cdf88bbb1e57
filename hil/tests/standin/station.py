#!/usr/bin/env python3
"""A scripted stand-in for the Basics Station binary, used ONLY to exercise the hil harness
(provisioning, process handling, log following, audit correlation) on machines without a
real station. It speaks real CUPS over real TLS to the real cups-server, and a minimal TC
client (router-info + muxs WebSockets over TLS with the TC credentials CUPS delivered), and
prints log lines in the station's format (src/log.c) with the station's message texts
(src/cups.c, src/tc.c). Update signatures are checked with the openssl binary and
the update is run with /bin/sh, as the station does.

Usage (the station's own flags): station.py --home DIR --temp DIR --log-file - ...
"""
import base64
import datetime
import http.client
import json
import os
import ssl
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

CUPS_NOW = threading.Event()   # set by the TC engine to invoke CUPS early
TC_STATE = {"connected": False, "stop": None}


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


def tls_context(home, base):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=read(os.path.join(home, base + ".trust")))
    crt = read(os.path.join(home, base + ".crt")) or b""
    key = read(os.path.join(home, base + ".key")) or b""
    if crt:
        tmp = tempfile.mkdtemp()
        cp, kp = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        with open(cp, "w") as f:
            f.write(pem("CERTIFICATE", crt))
        with open(kp, "w") as f:
            f.write(pem("EC PRIVATE KEY", key))
        ctx.load_cert_chain(cp, kp)
    return ctx


def ws_open(ctx, host, port, path):
    raw = socket.create_connection((host, int(port)), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=host)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise OSError("closed during upgrade")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise OSError("upgrade refused: %r" % head.split(b"\r\n")[0])
    return s


def ws_send(s, text):
    data = text.encode()
    mask = os.urandom(4)
    hdr = bytes([0x81])
    if len(data) < 126:
        hdr += bytes([0x80 | len(data)])
    else:
        hdr += bytes([0x80 | 126]) + struct.pack(">H", len(data))
    s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise OSError("closed")
        out += chunk
    return out


def ws_recv(s):
    """Next text/binary payload; None on a close frame."""
    while True:
        b0, b1 = recv_exact(s, 2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack(">H", recv_exact(s, 2))
        elif n == 127:
            (n,) = struct.unpack(">Q", recv_exact(s, 8))
        payload = recv_exact(s, n)
        op = b0 & 0x0F
        if op == 8:
            return None
        if op in (1, 2):
            return payload


def tc_engine(home, router):
    """Router-info, then muxs until the socket closes; a refusal invokes CUPS."""
    me = threading.current_thread()
    log("TCE", "INFO", "Starting TC engine")
    retries = 0
    while TC_STATE["stop"] is not me:
        uri = (read(os.path.join(home, "tc.uri")) or b"").decode().strip()
        if not uri:
            log("TCE", "ERRO", "No TC URI configured")
            log("TCE", "INFO", "Router rejected or retry limit reached. Invoking CUPS.")
            CUPS_NOW.set()
            return
        host, port = uri.split("://", 1)[1].rsplit(":", 1)
        log("TCE", "INFO", "Connecting to INFOS: %s" % uri)
        try:
            ctx = tls_context(home, "tc")
            s = ws_open(ctx, host, port, "/router-info")
            ws_send(s, json.dumps({"router": router}))
            answer = json.loads(ws_recv(s) or b"{}")
            s.close()
        except (OSError, ValueError, ssl.SSLError):
            log("TCE", "ERRO", "TC connect failed - URI: %s" % uri)
            retries += 1
            if retries >= 10:
                log("TCE", "INFO", "Router rejected or retry limit reached. Invoking CUPS.")
                CUPS_NOW.set()
                return
            log("TCE", "INFO", "INFOS reconnect backoff %ds (retry %d)" % (1, retries))
            time.sleep(1)
            continue
        if "error" in answer or "uri" not in answer:
            log("TCE", "ERRO", "Infos error: %s %s" % (answer.get("router"), answer.get("error")))
            log("TCE", "INFO", "Router rejected or retry limit reached. Invoking CUPS.")
            CUPS_NOW.set()
            return
        log("TCE", "INFO", "Infos: %s %s %s" % (answer.get("router"), answer.get("muxs"), answer["uri"]))
        mhost, rest = answer["uri"].split("://", 1)[1].split(":", 1)
        mport, mpath = rest.split("/", 1)
        try:
            m = ws_open(ctx, mhost, mport, "/" + mpath)
            ws_send(m, json.dumps({"msgtype": "version", "station": "2.0.6(standin/hil)",
                                   "firmware": None, "package": None, "model": "linux",
                                   "protocol": 2, "features": ""}))
            TC_STATE["connected"] = True
            log("TCE", "VERB", "Connected to MUXS.")
            retries = 0
            m.settimeout(0.5)
            while TC_STATE["stop"] is not me:
                try:
                    if ws_recv(m) is None:
                        break
                except socket.timeout:
                    continue
            m.close()
        except (OSError, ssl.SSLError):
            pass
        TC_STATE["connected"] = False
        log("TCE", "VERB", "Connection to MUXS closed in state -3")
        if TC_STATE["stop"] is me:
            return
        retries += 1
        log("TCE", "INFO", "MUXS reconnect backoff 1s (retry %d)" % retries)
        time.sleep(1)


def start_tc(home, router):
    t = threading.Thread(target=tc_engine, args=(home, router), daemon=True)
    TC_STATE["stop"] = None
    TC_STATE["thread"] = t
    t.start()


def stop_tc():
    t = TC_STATE.get("thread")
    if t is not None and t.is_alive():
        log("TCE", "INFO", "Terminating TC engine")
        TC_STATE["stop"] = t
        t.join(timeout=5)
    TC_STATE["connected"] = False


# P-256 SubjectPublicKeyInfo DER prefix for an uncompressed point (04 || X || Y).
SPKI_P256 = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


def verify(key64, der_sig, update):
    """ECDSA P-256 over SHA-512(update), checked with the openssl binary."""
    with tempfile.TemporaryDirectory() as tmp:
        kp, sp, up = (os.path.join(tmp, n) for n in ("k.pem", "s.der", "u.bin"))
        with open(kp, "w") as f:
            f.write(pem("PUBLIC KEY", SPKI_P256 + b"\x04" + key64))
        with open(sp, "wb") as f:
            f.write(der_sig)
        with open(up, "wb") as f:
            f.write(update)
        r = subprocess.run(["openssl", "dgst", "-sha512", "-verify", kp, "-signature", sp, up],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0


def handle_update(home, temp, sig, update):
    """What src/cups.c does with a received update: verify, then run or abort."""
    path = os.path.join(temp, "update.bin")
    with open(path, "wb") as f:
        f.write(update)
    log("CUP", "INFO", "Update received (%d bytes)" % len(update))
    log("CUP", "INFO", "CUPS provided update.bin")
    run = False
    if sig:
        (keycrc,) = struct.unpack_from("<I", sig, 0)
        der = sig[4:]
        log("CUP", "INFO", "CUPS provided signature len=%d keycrc=%08X" % (len(der), keycrc))
        n = 0
        while not run:
            key = read(os.path.join(home, "sig-%d.key" % n))
            if key is None:
                break
            run = len(key) == 64 and verify(key, der, update)
            log("CUP", "INFO", "ECDSA key#%d -> %s" % (n, "VERIFIED" if run else "NOT verified"))
            n += 1
        if not run:
            log("CUP", "WARN", "No key could verify signature. Tried %d keys" % n)
    elif read(os.path.join(home, "sig-0.key")) is None:
        log("CUP", "INFO", "No Key. No Sig. UPDATE.")
        run = True
    else:
        log("CUP", "ERRO", "Keyfile present, but no signature provided. Aborting update.")
    if run:
        log("CUP", "INFO", "Running update.bin as background process")
        subprocess.run(["/bin/sh", path], cwd=home, stdout=subprocess.DEVNULL)
    else:
        log("CUP", "INFO", "Aborting update.")
        os.remove(path)


def main():
    args = sys.argv[1:]
    if "--kill" in args or "-k" in args:
        # The station's --kill stops a running station; this stand-in runs only in the
        # foreground, where the harness has already ended it.
        return
    home = args[args.index("--home") + 1] if "--home" in args else os.getcwd()
    temp = args[args.index("--temp") + 1] if "--temp" in args else tempfile.gettempdir()
    conf = json.loads(read(os.path.join(home, "station.conf")))["station_conf"]
    resync = span(conf.get("CUPS_RESYNC_INTV"), 60)
    oksync = span(conf.get("CUPS_OKSYNC_INTV"), 86400)
    router = conf["routerid"]
    log("SYS", "INFO", "Station EUI : %s" % router)
    tries = 0
    delay = 0
    sets = (("", "cups"), ("-bak", "cups-bak"), ("-boot", "cups-boot"))
    cur = 0
    while True:
        log("CUP", "INFO", "Starting a CUPS session in %d seconds." % delay)
        if CUPS_NOW.wait(timeout=delay):
            CUPS_NOW.clear()
            if delay > resync:
                # Invoked by the TC engine: after CUPS_RESYNC_INTV, as the station does.
                time.sleep(resync)
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
            handle_update(home, temp, segs["sig"], segs["update"])
        tc_changed = [w for w, s in (("uri", "tcUri"), ("credentials", "tcCred")) if segs[s]]
        cups_changed = [w for w, s in (("uri", "cupsUri"), ("credentials", "cupsCred")) if segs[s]]
        if tc_changed:
            log("CUP", "INFO", "CUPS provided TC updates (%s) - restarting TC engine" % "/".join(tc_changed))
            stop_tc()
        if cups_changed:
            log("CUP", "INFO", "CUPS provided CUPS updates (%s) - reconnecting in %ds" % ("/".join(cups_changed), resync))
            delay = resync
        else:
            quiet = not (tc_changed or segs["update"])
            log("CUP", "INFO", "Interaction with CUPS done%s - next regular check in %ds" % (" (no updates)" if quiet else "", oksync))
            delay = oksync
        tries = 0
        t = TC_STATE.get("thread")
        if t is None or not t.is_alive():
            start_tc(home, router)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
