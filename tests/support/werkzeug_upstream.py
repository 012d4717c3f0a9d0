"""A werkzeug application as an upstream, for tests that need a real framework behind Usher.

Werkzeug (and Flask on top of it) upper-cases the request method before routing, as many
frameworks do, so `delete` runs the DELETE handler. The application records every request
a handler ran; `GET /ran` (asked directly, not through Usher) lists them.

`GET /slow` takes 300 ms, and keeps working when its client leaves (a thread-per-request
server does not notice the close); `GET /stats` tells the most `/slow` requests that ran at
once. `GET /large` answers 32 MiB.

It prints its port on the first line of standard output and serves until killed.
"""

import json
import threading
import time

from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

ran = []
lock = threading.Lock()
slow = {"running": 0, "most": 0, "done": 0}
rules = Map(
    [
        Rule("/api/v1/venues/<venue>", endpoint="venue", methods=["GET", "DELETE"]),
        Rule("/ran", endpoint="ran", methods=["GET"]),
        Rule("/slow", endpoint="slow", methods=["GET"]),
        Rule("/stats", endpoint="stats", methods=["GET"]),
        Rule("/large", endpoint="large", methods=["GET"]),
    ]
)


def run_slow():
    with lock:
        slow["running"] += 1
        slow["most"] = max(slow["most"], slow["running"])
    time.sleep(0.3)
    with lock:
        slow["running"] -= 1
        slow["done"] += 1
    return Response("{}", content_type="application/json")


@Request.application
def application(request):
    endpoint, _ = rules.bind_to_environ(request.environ).match()
    if endpoint == "ran":
        return Response(json.dumps(ran), content_type="application/json")
    if endpoint == "stats":
        with lock:
            return Response(json.dumps(slow), content_type="application/json")
    if endpoint == "slow":
        return run_slow()
    if endpoint == "large":
        return Response(b"x" * (32 << 20), content_type="application/octet-stream")
    ran.append(f"{request.method} {request.path}")
    return Response(json.dumps({"handled": request.method}), content_type="application/json")


server = make_server("127.0.0.1", 0, application, threaded=True)
print(server.port, flush=True)
server.serve_forever()
