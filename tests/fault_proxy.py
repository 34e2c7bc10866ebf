"""A fault-injecting HTTP proxy for the streaming tests (tests/python/test_streaming.py).

Forwards each GET to UPSTREAM (nginx) and answers according to a plan, cycling through it one
request at a time: `ok` (the upstream's answer, untouched), `429` (Too Many Requests, with
`Retry-After: 0`), `500`, `503`, `reset` (the connection closed without an answer), `short` (the
full Content-Length promised, half the body sent, then the connection closed), `corrupt` (the whole
body with one byte flipped), `slow` (the answer after SLOW seconds), `stall` (no answer for an
hour). Counts of each fault served go to COUNTS (a JSON file rewritten after every request).

    python tests/fault_proxy.py PORT UPSTREAM PLAN COUNTS [SLOW]
    python tests/fault_proxy.py 8081 http://127.0.0.1:8080 429,ok,reset,ok,short counts.json
"""

import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    port, upstream, plan, counts_path = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), sys.argv[4]
    slow = float(sys.argv[5]) if len(sys.argv) > 5 else 0.5
    up = urllib.parse.urlsplit(upstream)
    lock = threading.Lock()
    state = {"n": 0, "counts": {}}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            with lock:
                fault = plan[state["n"] % len(plan)]
                state["n"] += 1
                state["counts"][fault] = state["counts"].get(fault, 0) + 1
                with open(counts_path, "w") as f:
                    json.dump(state["counts"], f)
            if fault in ("429", "500", "503"):
                body = f"injected {fault}\n".encode()
                self.send_response(int(fault))
                if fault == "429":
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if fault == "reset":
                # SO_LINGER 0: the close sends a RST, as a dropped connection does.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.close_connection = True
                return
            if fault == "stall":
                time.sleep(3600)
                return
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            conn.request("GET", self.path)
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if fault == "slow":
                time.sleep(slow)
            if fault == "corrupt" and resp.status == 200 and body:
                i = len(body) // 2
                body = body[:i] + bytes([body[i] ^ 0x55]) + body[i + 1 :]
            self.send_response(resp.status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if fault == "short":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
