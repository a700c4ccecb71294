"""The shop's web server (installed and started by web::deploy): the files under one
directory, on port 80. The directory is the app's `current` link, joined at every request,
so a new release needs no restart. Each response leaves in one write, so a crash never
cuts one short (HAProxy retries a request that got no answer, not one half answered), and
SIGTERM lets the requests in flight finish before it exits."""

import functools
import http.server
import signal
import sys
import threading


class Handler(http.server.SimpleHTTPRequestHandler):
    wbufsize = 1 << 16  # buffered: flushed once, when the response is complete


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # so server_close waits for the requests in flight


server = Server(("", 80), functools.partial(Handler, directory=sys.argv[1]))
# shutdown() waits for serve_forever to return: it cannot run on serve_forever's thread.
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
server.server_close()
