#!/usr/bin/env python3
"""Records one TCP connection's bytes each way: listens on 127.0.0.1:PORT,
relays the first connection to 127.0.0.1:UPSTREAM, and writes what the
client sent to NAME.req.bin and what the server sent to NAME.resp.bin."""
import select
import socket
import sys

port, upstream, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lsock = socket.create_server(("127.0.0.1", port))
print("ready", flush=True)
client, _ = lsock.accept()
server = socket.create_connection(("127.0.0.1", upstream))
logs = {client: open(name + ".req.bin", "wb"), server: open(name + ".resp.bin", "wb")}
other = {client: server, server: client}
open_ends = {client, server}
while open_ends:
    ready, _, _ = select.select(list(open_ends), [], [], 10)
    if not ready:
        break
    for s in ready:
        data = s.recv(65536)
        if data:
            logs[s].write(data)
            other[s].sendall(data)
        else:
            open_ends.discard(s)
            try:
                other[s].shutdown(socket.SHUT_WR)
            except OSError:
                pass
for f in logs.values():
    f.close()
