"""cut_proxy.py - a TCP proxy for tests/system/edge_update.sh: forwards
127.0.0.1:0 (the port goes to PORT_FILE) to TARGET_PORT; the first
connection whose answer passes CUT_BYTES is cut there, once (a connection cut
in the middle of a bundle download).  TLS passes through untouched.

    python cut_proxy.py TARGET_PORT CUT_BYTES PORT_FILE
"""
import socket
import sys
import threading

target, cut, port_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
state = {"cut": False}
lock = threading.Lock()


def pump(src, dst, count):
    sent = 0
    try:
        while True:
            data = src.recv(16384)
            if not data:
                break
            if count:
                with lock:
                    do_cut = not state["cut"] and sent + len(data) > cut
                    if do_cut:
                        state["cut"] = True
                if do_cut:
                    dst.sendall(data[: cut - sent])
                    print(f"cut a connection after {cut} bytes", flush=True)
                    break
            dst.sendall(data)
            sent += len(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(64)
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
import os
os.rename(port_file + ".tmp", port_file)
while True:
    c, _ = srv.accept()
    try:
        u = socket.create_connection(("127.0.0.1", target))
    except OSError:
        c.close()
        continue
    threading.Thread(target=pump, args=(c, u, False), daemon=True).start()
    threading.Thread(target=pump, args=(u, c, True), daemon=True).start()
