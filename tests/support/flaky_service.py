#!/usr/bin/env python3
"""A small HTTP service whose health can be broken and repaired on demand, for hmrt's
end-to-end tests. Python 3 standard library only; listens on 127.0.0.1 only.

    flaky_service.py --port N [--control-file PATH] [--never-healthy] [--start-delay S]
                     [--requires-port P]

Endpoints:
    GET  /health   200 "ok" while healthy, 500 "unhealthy" after /fail; hangs after /hang
    POST /fail     /health returns 500 from now on
    POST /hang     /health never answers from now on (for check timeouts)
    POST /recover  /health returns 200 again
    GET  /pid      this process's pid

The health mode lives in memory, so a restart repairs the service, unless --control-file is
given: then the mode is kept in that file ("ok", "fail" or "hang"; missing = "ok"), read on
every /health request, so it survives restarts (a service a restart cannot fix) and a test
can also flip it by writing the file. --never-healthy makes /health always 500.
--start-delay sleeps that many seconds before listening (a slow starter).
--requires-port makes /health answer 500 "dependency down" while nothing accepts connections on
127.0.0.1:P (a service that needs its database).

Every request is logged to stderr. SIGTERM and SIGINT exit promptly with status 0.
"""

import argparse
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "fail", "hang")


def log(msg):
    sys.stderr.write("flaky_service[%d]: %s\n" % (os.getpid(), msg))
    sys.stderr.flush()


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class State:
    def __init__(self, control_file, never_healthy, requires_port=None):
        self.control_file = control_file
        self.never_healthy = never_healthy
        self.requires_port = requires_port
        self.lock = threading.Lock()
        self.mode = "ok"

    def get(self):
        if self.never_healthy:
            return "fail"
        if self.requires_port is not None and not port_open(self.requires_port):
            return "dependency down"
        if self.control_file is None:
            with self.lock:
                return self.mode
        try:
            with open(self.control_file, encoding="utf-8") as f:
                mode = f.read().strip()
        except FileNotFoundError:
            return "ok"
        return mode if mode in MODES else "fail"

    def set(self, mode):
        if self.control_file is None:
            with self.lock:
                self.mode = mode
            return
        # Write-then-rename so a concurrent reader never sees a half-written file.
        tmp = "%s.%d.tmp" % (self.control_file, os.getpid())
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(mode + "\n")
        os.replace(tmp, self.control_file)


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        server_version = "flaky_service/1"
        protocol_version = "HTTP/1.0"

        def reply(self, code, text):
            body = (text + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/health":
                mode = state.get()
                if mode == "ok":
                    self.reply(200, "ok")
                elif mode == "dependency down":
                    self.reply(500, "dependency down: nothing on port %d" % state.requires_port)
                elif mode == "hang":
                    log("GET /health: hanging (mode hang)")
                    # Daemon thread: never answers, and does not delay exit.
                    threading.Event().wait()
                else:
                    self.reply(500, "unhealthy")
            elif self.path == "/pid":
                self.reply(200, str(os.getpid()))
            else:
                self.reply(404, "not found")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(min(length, 65536))
            modes = {"/fail": "fail", "/hang": "hang", "/recover": "ok"}
            if self.path in modes:
                state.set(modes[self.path])
                self.reply(200, modes[self.path])
            else:
                self.reply(404, "not found")

        def log_message(self, fmt, *args):
            log("%s %s" % (self.address_string(), fmt % args))

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-file")
    parser.add_argument("--never-healthy", action="store_true")
    parser.add_argument("--start-delay", type=float, default=0.0)
    parser.add_argument("--requires-port", type=int)
    args = parser.parse_args()

    def on_signal(signum, _frame):
        log("got signal %d, exiting" % signum)
        # os._exit: no waiting for handler threads (a hanging /health must not delay exit).
        os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if args.start_delay > 0:
        log("sleeping %.2fs before listening" % args.start_delay)
        time.sleep(args.start_delay)

    state = State(args.control_file, args.never_healthy, args.requires_port)
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
    except OSError as e:
        log("cannot listen on 127.0.0.1:%d: %s" % (args.port, e))
        sys.exit(2)
    server.daemon_threads = True
    log("listening on 127.0.0.1:%d" % args.port)
    server.serve_forever()


if __name__ == "__main__":
    main()
