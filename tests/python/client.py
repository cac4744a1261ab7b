"""A Python Netcore 0.1.3 client for tests/python_compat.rs: calls a (Rust) server at the port
given, prints one JSON line per case, then `DONE`. Cases: "route kind size" triples on argv[2:]."""
import json, os, socket, sys, threading, time

from netcore import Endpoint, Pipe

sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
endpoint = Endpoint(Pipe(sock.recv, sock.sendall))
threading.Thread(target=endpoint.start, daemon=True).start()


def payload(kind, size):
    if kind == "bytes":
        return bytes(i % 251 for i in range(size))
    if kind == "text":
        return "x" * size
    return {"pad": "y" * max(size - 11, 0)}  # json.dumps gives `size` bytes for size >= 11


def call(route, data, timeout=60.0):
    done = threading.Event()
    got = {}

    def on_reply(req):
        got["req"] = req
        done.set()

    start = time.monotonic()
    endpoint.send(route, data, callback=on_reply)
    ok = done.wait(timeout)
    return ok, got.get("req"), (time.monotonic() - start) * 1000


for case in sys.argv[2:]:
    route, kind, size = case.split(":")
    data = payload(kind, int(size))
    ok, req, ms = call(route, data)
    want = data if isinstance(data, bytes) else (data.encode() if isinstance(data, str) else json.dumps(data).encode())
    result = {"case": case, "answered": ok, "ms": round(ms, 1)}
    if ok:
        result["route"] = req.route
        result["len"] = len(req.meta)
        result["same"] = req.meta == want if route == "echo" else None
        result["json"] = req.json if route != "echo" else None
    print(json.dumps(result), flush=True)
print("DONE", flush=True)
os._exit(0)
