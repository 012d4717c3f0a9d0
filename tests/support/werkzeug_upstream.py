"""A werkzeug application as an upstream, for tests that need a real framework behind Usher.

Werkzeug (and Flask on top of it) upper-cases the request method before routing, as many
frameworks do, so `delete` runs the DELETE handler. The application records every request
a handler ran; `GET /ran` (asked directly, not through Usher) lists them. It prints its port
on the first line of standard output and serves until killed.
"""

import json

from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

ran = []
rules = Map(
    [
        Rule("/api/v1/venues/<venue>", endpoint="venue", methods=["GET", "DELETE"]),
        Rule("/ran", endpoint="ran", methods=["GET"]),
    ]
)


@Request.application
def application(request):
    endpoint, _ = rules.bind_to_environ(request.environ).match()
    if endpoint == "ran":
        return Response(json.dumps(ran), content_type="application/json")
    ran.append(f"{request.method} {request.path}")
    return Response(json.dumps({"handled": request.method}), content_type="application/json")


server = make_server("127.0.0.1", 0, application, threaded=True)
print(server.port, flush=True)
server.serve_forever()
