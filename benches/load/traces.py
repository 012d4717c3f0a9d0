#!/usr/bin/env python3
"""What tracing costs: the same Usher with tracing off, sampling 10 % of requests and
sampling all of them, each exporting over OTLP/HTTP to a collector on loopback (nginx
accepting every export), on the plain public route and on the full pipeline (JWT, tenant,
local rate limit, revocation, metrics, access log). Requests carry no `traceparent`, so
the sampler alone decides (`traceidratio`).

Same machinery as run.py (its helpers are imported): alternating rounds, medians, CPU time
per request from /proc, nothing pinned unless --placement pinned. Usher's own counters say
how many spans were exported and dropped. Everything runs on 127.0.0.1 and is stopped by
its PID. See docs/benchmarks.md.
"""

import argparse
import os
import re
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the load benchmark's helpers)

SAMPLING = {
    "off": {},
    "10%": {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    "100%": {"OTEL_TRACES_SAMPLER": "always_on"},
}


def start_collector(work):
    """nginx as an OTLP/HTTP sink: every export answered 200 with an empty body (an empty
    ExportTraceServiceResponse)."""
    port = run.free_port()
    collector = run.start_nginx(work, "collector", f"""
  access_log off;
  client_max_body_size 64m;
  server {{ listen 127.0.0.1:{port}; keepalive_requests 100000;
    location / {{ default_type application/x-protobuf; return 200 ''; }} }}""", "load")
    run.wait_http(f"http://127.0.0.1:{port}/", expect=200)
    collector.address = f"127.0.0.1:{port}"
    return collector


def exporter_cpu_seconds(process):
    """CPU time of the process's trace exporter thread (`usher-traces`), off the request path."""
    total = 0
    for task in Path(f"/proc/{process.pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() != "usher-traces":
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError):
            pass
    return total / run.CLK_TCK


def spans(process):
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{process.admin}/metrics", timeout=2).read().decode()
    found = dict(re.findall(r'usher_trace_spans_total\{outcome="(\w+)"\} (\d+)', metrics))
    return {outcome: int(count) for outcome, count in found.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--placement", default="unpinned", choices=run.PLACEMENTS)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    run.placement = run.PLACEMENTS[args.placement]
    if not run.ensure_tool("wrk", "wrk") or not run.ensure_tool("nginx", "nginx-light"):
        sys.exit("wrk and nginx are needed")
    if not args.no_build:
        run.build_usher()
    work = Path(tempfile.mkdtemp(prefix="usher-traces-"))
    processes = []
    try:
        upstream = run.start_upstream(work)
        processes.append(upstream)
        collector = start_collector(work)
        processes.append(collector)
        endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{collector.address}"}
        # Whatever OTEL_* the shell has is not the benchmark's (start_usher passes the
        # environment on).
        for variable in [v for v in os.environ if v.startswith("OTEL_")]:
            del os.environ[variable]
        ushers = {}
        for name, sampler in SAMPLING.items():
            env = {} if name == "off" else {**endpoint, **sampler}
            ushers[name] = run.start_usher(work, f"usher-{name.rstrip('%')}", upstream.address, env=env.items())
            processes.append(ushers[name])
        bearer = (f"Authorization: Bearer {run.bench_token()}",)
        targets = [(f"{route} {name}", usher, path, headers)
                   for route, path, headers in (("plain", "/bench/plain", ()), ("full", "/bench/full", bearer))
                   for name, usher in ushers.items()]
        for _, process, path, headers in targets:
            run.measure(process, process.port, path, 1, args.connections, headers)
        samples = {name: [] for name, *_ in targets}
        cpu_before = {name: (usher.cpu_seconds(), exporter_cpu_seconds(usher)) for name, usher in ushers.items()}
        for round_number in range(1, args.rounds + 1):
            for name, process, path, headers in targets:
                result = run.measure(process, process.port, path, args.duration, args.connections, headers)
                samples[name].append(result)
                run.log(f"round {round_number} {name:11} {result['rps']:9.0f} req/s  "
                        f"{result['cpu_us_per_request']:5.1f} µs CPU/req  p99 {result['p99_ms']:.2f} ms  "
                        f"non-2xx {result['non2xx']}")
        exported = {name: spans(usher) for name, usher in ushers.items()}
        exporter_share = {}
        for name, usher in ushers.items():
            total = usher.cpu_seconds() - cpu_before[name][0]
            exporter_share[name] = (exporter_cpu_seconds(usher) - cpu_before[name][1]) / max(total, 1e-9)
    finally:
        for process in processes:
            process.stop()
    print(f"# Tracing cost: {args.rounds} rounds x {args.duration}s, wrk -t1 -c{args.connections}, "
          f"{run.placement_line(args.placement)}\n")
    print("| route, sampling | req/s median (min–max) | p99 ms | CPU µs/req | × off CPU | non-2xx |")
    print("|---|---|---|---|---|---|")
    for name, results in samples.items():
        rps, low, high = run.summarize(results, "rps")
        cpu = run.summarize(results, "cpu_us_per_request")[0]
        off = run.summarize(samples[name.split()[0] + " off"], "cpu_us_per_request")[0]
        bad = sum(r["non2xx"] for r in results)
        print(f"| {name} | {rps:,.0f} ({low:,.0f}–{high:,.0f}) | {run.summarize(results, 'p99_ms')[0]:.2f} | "
              f"{cpu:.1f} | {cpu / off:.2f} | {bad} |")
    print("\nshare of each process's CPU spent by its exporter thread: " +
          ", ".join(f"{name} {share:.1%}" for name, share in exporter_share.items()))
    print("spans by outcome (usher_trace_spans_total): " +
          "; ".join(f"{name}: {counts or 'none'}" for name, counts in exported.items()))


if __name__ == "__main__":
    main()
