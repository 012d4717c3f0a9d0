#!/usr/bin/env python3
"""Heap allocations per request: Usher (plain, authenticated and full-pipeline routes)
beside bare Pingora, each built with a counting allocator (examples/support/counting.rs)
around mimalloc, in the release profile Usher ships.

Each target gets a warm-up, then exactly `--requests` requests from h2load over HTTP/1.1
keep-alive; the allocations made meanwhile, less what the idle process makes in the same
time (health checks, the access log's writer, the counter's own thread), divided by the
requests, is the figure. Same configuration as run.py; everything on 127.0.0.1, every
process stopped by its PID.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import run

TARGETS = [("usher, plain route", "/bench/plain", False), ("usher, JWT", "/bench/auth", True),
           ("usher, full pipeline", "/bench/full", True)]


def counts(path):
    """The counter file's `<allocations> <bytes>`, once it has been rewritten after now."""
    time.sleep(0.12)  # the counter thread writes every 50 ms
    allocations, size = Path(path).read_text().split()
    return int(allocations), int(size)


def h2load(port, path, requests, headers=()):
    command = ["h2load", "--h1", "-n", str(requests), "-c", "10", "-m", "1"]
    for header in headers:
        command += ["-H", header]
    command.append(f"http://127.0.0.1:{port}{path}")
    output = subprocess.run(run.placed(command, "load"), capture_output=True, text=True, timeout=120,
                            check=True).stdout
    if f"{requests} succeeded" not in output or f"{requests} 2xx" not in output:
        raise RuntimeError(f"not every request succeeded with 2xx:\n{output}")


def per_request(process, counter, port, path, requests, headers):
    h2load(port, path, min(requests, 2000), headers)  # warm-up
    idle_start = counts(counter)
    began = time.time()
    time.sleep(1.0)
    idle_end = counts(counter)
    idle_rate = [(b - a) / (time.time() - began) for a, b in zip(idle_start, idle_end)]
    start = counts(counter)
    began = time.time()
    h2load(port, path, requests, headers)
    end = counts(counter)
    elapsed = time.time() - began
    return [((b - a) - rate * elapsed) / requests for a, b, rate in zip(start, end, idle_rate)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not run.ensure_tool("h2load", "nghttp2-client"):
        sys.exit("h2load is needed: apt-get install nghttp2-client")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--example", "usher_counting",
                        "--example", "bare_proxy_counting", "--example", "bench_upstream"], cwd=run.ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="usher-allocations-"))
    examples = run.TARGET / "release" / "examples"
    processes = []
    try:
        upstream = run.start_upstream(work, nginx=False)
        processes.append(upstream)
        usher_counter, bare_counter = work / "usher.count", work / "bare.count"
        usher = run.start_usher(work, "usher", upstream.address, program=[str(examples / "usher_counting")],
                                env={"COUNT_ALLOCATIONS_TO": str(usher_counter)})
        processes.append(usher)
        bare_port = run.free_port()
        bare = run.Process("bare", [str(examples / "bare_proxy_counting"), f"127.0.0.1:{bare_port}",
                                    upstream.address, "1"], role="proxy",
                           env={**os.environ, "COUNT_ALLOCATIONS_TO": str(bare_counter)})
        processes.append(bare)
        run.wait_http(f"http://127.0.0.1:{bare_port}/", expect=200)
        bearer = (f"Authorization: Bearer {run.bench_token()}",)
        rows = [("bare Pingora", per_request(bare, bare_counter, bare_port, "/bench/plain", args.requests, ()))]
        for name, path, authenticated in TARGETS:
            rows.append((name, per_request(usher, usher_counter, usher.port, path, args.requests,
                                           bearer if authenticated else ())))
    finally:
        for process in processes:
            process.stop()
    print(f"# Allocations per request, {time.strftime('%Y-%m-%d')} ({args.requests:,} requests each, "
          "h2load --h1 -c10, release profile)\n")
    print("| target | allocations per request | bytes allocated per request |")
    print("|---|---|---|")
    for name, (allocations, size) in rows:
        print(f"| {name} | {allocations:.1f} | {size:,.0f} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
