"""mitm_proxy.py - a malicious mirror for tests/system/edge_attacks.sh: an
HTTPS server on 127.0.0.1 with the test CA's server certificate (so the agent
trusts the connection: the attacker holds the transport, not the publisher
key) that forwards every call to kilnd's fleet endpoint, except that

    CTL/manifest   present: its bytes answer GET /edge/v1/manifest
    CTL/bundle     present: its bytes answer GET /edge/v1/bundle/ANY
    CTL/flip       present: one byte in the middle of a forwarded bundle is flipped

Each forwarded or forged answer is logged, and each report's health and
message with kilnd's answer (kilnd keeps no report message); CTL/seen-manifest keeps the last
envelope kilnd sent (a captured envelope, to replay later).

    python mitm_proxy.py TARGET_URL CERT KEY CA CTL PORT_FILE
"""
import http.client
import json
import http.server
import os
import ssl
import sys
import urllib.parse

target, cert, key, ca, ctl, port_file = sys.argv[1:7]
up = urllib.parse.urlparse(target)
up_ctx = ssl.create_default_context(cafile=ca)
FWD_REQ = ("X-Kiln-Device", "X-Kiln-Time", "X-Kiln-Sig", "Range", "Content-Type")
FWD_RESP = ("Content-Type", "Content-Range", "Accept-Ranges")


def ctl_bytes(name):
    try:
        with open(os.path.join(ctl, name), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        print("mitm: " + fmt % args, flush=True)

    def answer(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self):
        body = self.body
        hdrs = {k: self.headers[k] for k in FWD_REQ if self.headers.get(k)}
        c = http.client.HTTPSConnection(up.hostname, up.port, context=up_ctx, timeout=30)
        try:
            c.request(self.command, self.path, body=body, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            return r.status, data, [(k, r.getheader(k)) for k in FWD_RESP if r.getheader(k)]
        finally:
            c.close()

    def handle_any(self):
        path = self.path.split("?")[0]
        if self.command == "GET" and path == "/edge/v1/manifest":
            forged = ctl_bytes("manifest")
            if forged is not None:
                print("mitm: forged manifest (%d bytes)" % len(forged), flush=True)
                return self.answer(200, forged, [("Content-Type", "application/json")])
        if self.command == "GET" and path.startswith("/edge/v1/bundle/"):
            forged = ctl_bytes("bundle")
            if forged is not None:
                print("mitm: forged bundle (%d bytes)" % len(forged), flush=True)
                return self.answer(200, forged, [("Content-Type", "application/octet-stream")])
        n = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(n) if n else None
        try:
            status, data, hdrs = self.forward()
        except OSError as e:
            print("mitm: kilnd unreachable: %s" % e, flush=True)
            return self.answer(502, b'{"error":"mitm: upstream unreachable"}')
        if path == "/edge/v1/report":
            try:
                r = json.loads(self.body or b"{}")
            except ValueError:
                r = {}
            print("mitm: report to kilnd (HTTP %d): health=%s message=%s"
                  % (status, r.get("health"), r.get("message")), flush=True)
        if path == "/edge/v1/manifest" and status == 200:
            tmp = os.path.join(ctl, "seen-manifest.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, os.path.join(ctl, "seen-manifest"))
        if path.startswith("/edge/v1/bundle/") and status in (200, 206) and data \
                and os.path.exists(os.path.join(ctl, "flip")):
            b = bytearray(data)
            b[len(b) // 2] ^= 0x01
            data = bytes(b)
            print("mitm: flipped byte %d of a bundle" % (len(b) // 2), flush=True)
        self.answer(status, data, hdrs)

    do_GET = do_POST = handle_any


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(port_file + ".tmp", port_file)
srv.serve_forever()
