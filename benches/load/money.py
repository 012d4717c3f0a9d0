#!/usr/bin/env python3
"""Load benchmark of the money paths: one authenticated 1 KiB JSON POST, streamed to the
upstream as usual, then with the body read whole first (buffer_body), validated against a
JSON Schema, and with Idempotency-Key handling in process and through Redis. Each request
carries a new key, so every idempotent request is executed (the costly path: reserve and
complete).

Same machinery and placement as run.py (its helpers are imported): the proxy alone on core
1 with one worker thread, wrk and the upstream on core 0, alternating rounds, medians.
Everything runs on 127.0.0.1 and is stopped by its PID. See docs/benchmarks.md.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the load benchmark's helpers)

# 1 KiB of JSON that the schema below accepts.
ORDER = {"eventId": "evt-42", "tickets": [{"ticketTypeId": "ga", "quantity": 2}],
         "note": "x" * 940}
SCHEMA = {
    "type": "object",
    "required": ["eventId", "tickets"],
    "properties": {
        "eventId": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "tickets": {"type": "array", "minItems": 1, "maxItems": 10,
                    "items": {"type": "object", "required": ["ticketTypeId", "quantity"],
                              "properties": {"quantity": {"type": "integer", "minimum": 1}}}},
        "note": {"type": "string", "maxLength": 2000},
    },
}
ROUTES = {
    "money-streamed": "buffer_body: false, ",
    "money-buffered": "buffer_body: true, ",
    "money-validated": "validate: { body_schema: order.json }, ",
    "money-idempotent": "idempotency: {}, ",
}


def start(directory, name, upstream, redis=None):
    """run.py's Usher plus one authenticated POST route per variant."""
    (directory / "order.json").write_text(json.dumps(SCHEMA))
    routes = [f"{{ name: {route}, match: {{ path: /bench/{route} }}, upstream: tickets, "
              f"max_body: 8KiB, {features}default_rate_limits: false }}"
              for route, features in ROUTES.items()]
    return run.start_usher(directory, name, upstream, redis=redis, routes=routes)


def wrk_script(directory, token):
    """POSTs ORDER with the token and, per request, a new Idempotency-Key."""
    body = json.dumps(ORDER)
    script = directory / "money.lua"
    script.write_text(f"""
wrk.method = "POST"
wrk.body = {json.dumps(body)}
math.randomseed(os.time())
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
local n = 0
-- wrk.format's headers replace wrk.headers: every request gets all of them here.
request = function()
  n = n + 1
  return wrk.format(nil, nil, {{
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer {token}",
    ["Idempotency-Key"] = '"' .. prefix .. "-" .. n .. '"',
  }})
end
""")
    return script


def measure(process, path, script, duration, connections):
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s",
               "-s", str(script), f"http://127.0.0.1:{process.port}{path}"]
    command = run.placed(command, "load")
    before = process.cpu_seconds()
    output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    result = run.parse_wrk(output)
    result["cpu_us_per_request"] = (process.cpu_seconds() - before) * 1e6 / max(result["requests"], 1)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    if not run.ensure_tool("wrk", "wrk") or not run.ensure_tool("redis-server", "redis-server"):
        sys.exit("wrk and redis-server are needed")
    have_nginx = run.ensure_tool("nginx", "nginx-light")
    work = Path(tempfile.mkdtemp(prefix="usher-money-"))
    processes = []
    try:
        upstream = run.start_upstream(work, nginx=have_nginx)
        processes.append(upstream)
        redis, settings = run.start_redis(work)
        processes.append(redis)
        local = start(work, "usher-local", upstream.address)
        shared = start(work, "usher-redis", upstream.address, redis=settings)
        processes += [local, shared]
        script = wrk_script(work, run.bench_token())
        targets = [(route, local, f"/bench/{route}") for route in ROUTES]
        targets.append(("money-idempotent-redis", shared, "/bench/money-idempotent"))
        for name, process, path in targets:
            measure(process, path, script, 1, args.connections)
        samples = {name: [] for name, *_ in targets}
        redis_requests = 0
        run.redis_cli(redis.port, "CONFIG", "RESETSTAT")
        for round_number in range(1, args.rounds + 1):
            for name, process, path in targets:
                result = measure(process, path, script, args.duration, args.connections)
                samples[name].append(result)
                if name == "money-idempotent-redis":
                    redis_requests += result["requests"]
                run.log(f"round {round_number} {name:24} {result['rps']:9.0f} req/s  "
                        f"{result['cpu_us_per_request']:5.1f} µs CPU/req  p99 {result['p99_ms']:.2f} ms  "
                        f"non-2xx {result['non2xx']}")
        calls = run.redis_calls(redis.port, "evalsha") + run.redis_calls(redis.port, "eval")
    finally:
        for process in processes:
            process.stop()
    print("| route | req/s | p99 | CPU µs/req | non-2xx |")
    print("|---|---|---|---|---|")
    for name, results in samples.items():
        rps = run.summarize(results, "rps")[0]
        p99 = run.summarize(results, "p99_ms")[0]
        cpu = run.summarize(results, "cpu_us_per_request")[0]
        bad = sum(r["non2xx"] for r in results)
        print(f"| {name} | {rps:,.0f} | {p99:.2f} ms | {cpu:.1f} | {bad} |")
    print(f"\nRedis round trips per idempotent request: {calls / max(redis_requests, 1):.3f} "
          f"({calls} scripts for {redis_requests} requests)")


if __name__ == "__main__":
    main()
