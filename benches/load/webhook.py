#!/usr/bin/env python3
"""End-to-end cost of verifying a 1 KiB payment-provider webhook at the edge: Usher's CPU
per request on a public route that checks a Stripe signature and records the delivery
(in process, and in Redis), against the same route without the check (its body buffered
all the same).

Every delivery is distinct (its own event id, so its own signature: a repeat would be
refused as a replay) and signed beforehand, as Stripe's documentation says. Keep-alive
clients in threads send them; the client's own speed does not matter, since the figure is
Usher's CPU time over the requests it answered. Same placement as run.py: Usher alone on
core 1 with one worker thread, the clients and the upstream on core 0. Everything runs on
127.0.0.1 and is stopped by its PID. See docs/benchmarks.md.
"""

import argparse
import hashlib
import hmac
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the load benchmark's helpers)

SECRET = run.WEBHOOK_SECRET
ROUTES = {
    "webhook-plain": "buffer_body: true",
    "webhook-verified": "webhook: { scheme: stripe, secrets: [{ env: STRIPE_WEBHOOK_SECRET }] }",
}


def start(work, name, upstream, redis=None):
    """run.py's Usher plus a public route per variant."""
    routes = [f"{{ name: {route}, match: {{ path: /bench/{route} }}, upstream: tickets, "
              f"public: true, max_body: 8KiB, default_rate_limits: false, {feature} }}"
              for route, feature in ROUTES.items()]
    return run.start_usher(work, name, upstream, redis=redis, routes=routes)


def deliveries(count, first):
    """`count` distinct 1 KiB Stripe events, each with its Stripe-Signature."""
    now = str(int(time.time()))
    out = []
    for n in range(first, first + count):
        body = json.dumps({"id": f"evt_{n}", "type": "payment_intent.succeeded",
                           "data": {"pad": "x" * 950}}).encode()
        mac = hmac.new(SECRET.encode(), now.encode() + b"." + body, hashlib.sha256).hexdigest()
        out.append((body, f"t={now},v1={mac}"))
    return out


def send(port, path, batch, statuses):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for body, signature in batch:
        connection.request("POST", path, body=body,
                           headers={"content-type": "application/json", "stripe-signature": signature})
        response = connection.getresponse()
        response.read()
        statuses[response.status] = statuses.get(response.status, 0) + 1
    connection.close()


def measure(process, path, count, clients, first):
    batch = deliveries(count, first)
    statuses = {}
    threads = [threading.Thread(target=send, args=(process.port, path, batch[i::clients], statuses))
               for i in range(clients)]
    before = process.cpu_seconds()
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    cpu = process.cpu_seconds() - before
    return {"cpu_us": cpu * 1e6 / count, "rps": count / elapsed, "statuses": statuses}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    if not run.ensure_tool("redis-server", "redis-server"):
        sys.exit("redis-server is needed")
    work = Path(tempfile.mkdtemp(prefix="usher-webhook-"))
    processes = []
    try:
        upstream = run.start_upstream(work, nginx=False)
        processes.append(upstream)
        redis, settings = run.start_redis(work)
        processes.append(redis)
        local = start(work, "usher-local", upstream.address)
        shared = start(work, "usher-redis", upstream.address, redis=settings)
        processes += [local, shared]
        targets = [("plain (body buffered, no check)", local, "/bench/webhook-plain"),
                   ("verified, deliveries in process", local, "/bench/webhook-verified"),
                   ("verified, deliveries in Redis", shared, "/bench/webhook-verified")]
        samples = {name: [] for name, *_ in targets}
        first = 0
        for name, process, path in targets:
            measure(process, path, 500, args.clients, first)
            first += 500
        for round_number in range(1, args.rounds + 1):
            for name, process, path in targets:
                result = measure(process, path, args.requests, args.clients, first)
                first += args.requests
                samples[name].append(result)
                run.log(f"round {round_number} {name:34} {result['cpu_us']:6.1f} µs CPU/req "
                        f"{result['rps']:7.0f} req/s  {result['statuses']}")
    finally:
        for process in processes:
            process.stop()
    print("| route | CPU µs/req (median) | statuses |")
    print("|---|---|---|")
    for name, results in samples.items():
        cpu = statistics.median(r["cpu_us"] for r in results)
        merged = {}
        for result in results:
            for status, n in result["statuses"].items():
                merged[status] = merged.get(status, 0) + n
        print(f"| {name} | {cpu:.1f} | {merged} |")


if __name__ == "__main__":
    main()
