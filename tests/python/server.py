"""A Python Netcore 0.1.3 server for tests/python_compat.rs and examples/python_peer.rs.

The paper's examples (the `message` route; the `/user/list` blueprint with a cache, a start
event and a periodic task) plus `echo` for payload checks. Prints `READY <port>` once listening.
Serves one connection the way the package README does: Pipe(conn.recv, conn.sendall).
"""
import os, socket, sys, threading, time

from netcore import Blueprint, Endpoint, Pipe, Response, request

port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(1)
print("READY", listener.getsockname()[1], flush=True)
conn, _ = listener.accept()

endpoint = Endpoint(Pipe(conn.recv, conn.sendall))
ticks = {"n": 0}


@endpoint.request("message")
def message():
    return Response("message", {"status": "received", "echo": request.json})


@endpoint.request("echo")
def echo():
    return Response("echo", request.meta)


@endpoint.request("sleep")
def sleep():
    time.sleep(float(request.string))
    return Response("sleep", "slept")


user = Blueprint("user", "/user")


@user.request("/list")
def user_list():
    users = endpoint.cache.get("users")
    if users is None:
        users = [{"id": 1, "name": "Alice"}, {"id": 2, "name": "Bob"}]
        endpoint.cache.set("users", users, ttl=60)
    return Response("/user/list", {"users": users, "ticks": ticks["n"]})


endpoint.register_blueprint(user)


@endpoint.event.on("start")
def started():
    print("STARTED", flush=True)


def tick():
    ticks["n"] += 1


endpoint.scheduler.schedule(tick, delay=0, interval=0.5)
endpoint.scheduler.start()
endpoint.event.emit("start")
threading.Thread(target=endpoint.start, daemon=True).start()
# Pipe threads are not daemons (the study, §6): leave when the parent closes our stdin.
sys.stdin.read()
os._exit(0)
