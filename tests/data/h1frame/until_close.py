#!/usr/bin/env python3
"""An HTTP/1.0 answer without a Content-Length: the body ends at the close."""
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"this body has no length: it ends when the server closes\n")


http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).handle_request()
