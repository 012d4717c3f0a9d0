#!/usr/bin/env python3
"""The figures an edge is judged by, Usher beside nginx in the same run: TLS termination
(a new connection per request, and keep-alive) with the same certificate and cipher,
HTTP/2 clients (h2load), latency at a fixed request rate (oha, coordinated omission
corrected), memory for idle keep-alive client connections, and how resident memory and
reload time grow with the configuration (upstreams and routes).

Same machinery as run.py (its helpers are imported): one worker thread per proxy, the same
upstream, CPU per request read from /proc, alternating rounds and medians. Nothing is
pinned unless `--placement pinned`. Everything runs on 127.0.0.1, every run is bounded,
and every process started here is stopped by its PID. See docs/benchmarks.md.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import run

# oha, a load generator from crates.io with a fixed-rate mode and latency correction,
# installed pinned outside the clone when it is missing.
OHA_VERSION = "1.16.0"
TOOLS = Path("/var/tmp/usher-bench-tools")


def certificate(directory):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1, used by both proxies."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def negotiated(port):
    """The protocol and cipher a default OpenSSL client gets from the listener."""
    output = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief"],
                            input="", capture_output=True, text=True, timeout=10)
    text = output.stdout + output.stderr
    protocol = re.search(r"Protocol version: (\S+)", text)
    cipher = re.search(r"Ciphersuite: (\S+)", text)
    return f"{protocol.group(1) if protocol else '?'} {cipher.group(1) if cipher else '?'}"


def wrk(process, url, duration, connections, headers=()):
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    for header in headers:
        command += ["-H", header]
    before = process.cpu_seconds()
    output = subprocess.run(run.placed(command + [url], "load"), capture_output=True, text=True,
                            timeout=duration + 30, check=True).stdout
    result = run.parse_wrk(output)
    result["cpu_us_per_request"] = (process.cpu_seconds() - before) * 1e6 / max(result["requests"], 1)
    return result


def h2load(process, url, requests, clients=16, streams=10):
    command = ["h2load", "-n", str(requests), "-c", str(clients), "-m", str(streams), url]
    before = time.time()
    cpu_before = process.cpu_seconds()
    output = subprocess.run(run.placed(command, "load"), capture_output=True, text=True, timeout=300,
                            check=True).stdout
    done = int(re.search(r"(\d+) succeeded", output).group(1))
    if done != requests or f"{requests} 2xx" not in output:
        raise RuntimeError(f"h2load: not every request succeeded:\n{output}")
    if "h2" not in re.search(r"Application protocol: (\S+)", output).group(1):
        raise RuntimeError(f"h2load did not speak HTTP/2:\n{output}")
    elapsed = time.time() - before
    return {"rps": requests / elapsed,
            "cpu_us_per_request": (process.cpu_seconds() - cpu_before) * 1e6 / requests}


def oha_binary():
    binary = TOOLS / "bin" / "oha"
    if binary.exists():
        return binary
    run.log(f"installing oha {OHA_VERSION} from crates.io into {TOOLS} (once)")
    subprocess.run(["cargo", "install", "oha", "--version", OHA_VERSION, "--locked", "--root", str(TOOLS)],
                   check=True, stdout=subprocess.DEVNULL)
    return binary


def fixed_rate(oha, url, rate, duration):
    """p50, p99, p99.9 in ms at `rate` requests a second, corrected for coordinated
    omission (a late request is timed from when it should have been sent)."""
    command = [str(oha), "-z", f"{duration}s", "-q", str(rate), "-c", "64", "--latency-correction",
               "--no-tui", "--output-format", "json", url]
    output = subprocess.run(run.placed(command, "load"), capture_output=True, text=True,
                            timeout=duration + 60, check=True).stdout
    report = json.loads(output)
    percentiles = report["latencyPercentiles"]
    codes = report.get("statusCodeDistribution", {})
    return {"p50_ms": percentiles["p50"] * 1e3, "p99_ms": percentiles["p99"] * 1e3,
            "p999_ms": percentiles["p99.9"] * 1e3, "rps": report["summary"]["requestsPerSec"],
            "non2xx": sum(n for code, n in codes.items() if not code.startswith("2"))}


def still_open(s):
    """Whether the server still holds the connection open: nothing to read yet, where a
    closed one reads end of file."""
    s.setblocking(False)  # a socket with a timeout would wait for data instead
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def idle_connections(process, port, count):
    """Resident memory per idle keep-alive client connection: `count` connections that
    each sent one request and read its answer, then stay open."""
    before = process.rss_mib()
    sockets = []
    request = f"GET /bench/plain HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    try:
        # One at a time: 10,000 requests at once would be shed as an overload.
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            sockets.append(s)
            s.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("a connection closed before its answer")
                answer += chunk
            if not answer.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected answer: {answer[:200]!r}")
        time.sleep(1.0)
        after = process.rss_mib()
        open_now = sum(1 for s in sockets if still_open(s))
        if open_now < count:
            raise RuntimeError(f"only {open_now} of {count} idle connections were still open")
    finally:
        for s in sockets:
            s.close()
    return {"connections": open_now, "before_mib": before, "after_mib": after,
            "kib_per_connection": (after - before) * 1024 / count}


def running_counts(work, upstream):
    """The routes and upstreams of the benchmark's configuration (the shipped file's and
    run.py's routes), as the running Usher counts them."""
    process = run.start_usher(work, "usher-counts", upstream)
    try:
        answer = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{process.admin}/config", timeout=10).read())
    finally:
        process.stop()
    return answer["running"]["routes"], answer["running"]["upstreams"]


def scale_configuration(work, upstream, counts, upstreams, routes):
    """Usher with at least `upstreams` upstreams and `routes` routes in all (`counts` of
    them from the benchmark's configuration, the rest generated): its resident memory once
    started, and how long a reload takes."""
    base_routes, base_upstreams = counts
    extra_upstreams = [f'gen{n}: {{ targets: ["{upstream}"] }}' for n in range(max(upstreams - base_upstreams, 0))]
    targets = [f"gen{n}" for n in range(len(extra_upstreams))] or ["tickets"]
    extra = [f"{{ name: r{n}, match: {{ path: /gen/{n}/:id }}, upstream: {targets[n % len(targets)]}, public: true }}"
             for n in range(max(routes - base_routes, 0))]
    process = run.start_usher(work, f"usher-{upstreams}-{routes}", upstream, upstreams=extra_upstreams, routes=extra,
                              startup_timeout=120)
    try:
        time.sleep(3)
        rss = process.rss_mib()
        took = []
        for _ in range(3):
            before = config_status(process)
            os.kill(process.pid, signal.SIGHUP)
            deadline = time.time() + 120
            while time.time() < deadline:
                status = config_status(process)
                if status and status != before and status.get("result"):
                    break
                time.sleep(0.02)
            else:
                raise RuntimeError("the reload did not finish")
            if status["result"] != "success":
                raise RuntimeError(f"reload failed: {status}")
            took.append(status["took_ms"])
        return {"upstreams": base_upstreams + len(extra_upstreams), "routes": base_routes + len(extra), "rss_mib": rss,
                "reload_ms": statistics.median(took)}
    finally:
        process.stop()


def config_status(process):
    try:
        answer = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{process.admin}/config", timeout=5).read())
    except (OSError, ValueError):
        return None
    return answer.get("last_reload")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--placement", default="unpinned", choices=list(run.PLACEMENTS))
    parser.add_argument("--rates", default="5000,15000", help="fixed request rates for the latency figures")
    parser.add_argument("--idle", type=int, default=10_000, help="idle keep-alive connections")
    parser.add_argument("--scales", default="19x0,500x1000,2000x10000",
                        help="upstreams x routes, comma-separated (0: the shipped routes only)")
    parser.add_argument("--sections", default="throughput,latency,idle,scale",
                        help="which figures, comma-separated: throughput (TLS and HTTP/2), latency, idle, scale")
    parser.add_argument("--json", type=Path, default=run.TARGET / "edge-results.json")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    run.placement = run.PLACEMENTS[args.placement]
    for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client"), ("nginx", "nginx-light"),
                          ("redis-server", "redis-server")):
        if not run.ensure_tool(tool, package):
            sys.exit(f"{tool} is needed: apt-get install {package}")
    # Both proxies and this script hold one descriptor per idle connection.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.idle + 1000:
        sys.exit(f"{args.idle} idle connections need more open files than the hard limit ({hard})")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--example", "bench_upstream",
                        "--example", "bare_proxy_mimalloc"],
                       cwd=run.ROOT, check=True)
        run.build_usher()
    sections = set(args.sections.split(","))
    oha = oha_binary() if "latency" in sections else None
    work = Path(tempfile.mkdtemp(prefix="usher-edge-"))
    cert, key = certificate(work)
    processes = []
    results = {"placement": args.placement}
    try:
        upstream = run.start_upstream(work)
        processes.append(upstream)
        upstream_addr = upstream.address
        usher = run.start_usher(work, "usher", upstream_addr, tls=(cert, key))
        processes.append(usher)
        usher_plain = run.start_usher(work, "usher-plain", upstream_addr)
        processes.append(usher_plain)
        nginx_tls, nginx_plain = run.free_port(), run.free_port()
        nginx = run.start_nginx(work, "nginx-proxy", f"""
  access_log {work}/nginx-access.log combined buffer=64k flush=1s;
  upstream backend {{ server {upstream_addr}; keepalive 64; }}
  server {{ listen 127.0.0.1:{nginx_tls} ssl http2; listen 127.0.0.1:{nginx_plain};
    ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 100000; keepalive_timeout 120s;
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}""",
                                 "proxy")
        nginx.tls_port, nginx.port = nginx_tls, nginx_plain
        processes.append(nginx)
        run.wait_http(f"http://127.0.0.1:{nginx_plain}/", expect=200)
        results["cipher"] = {"usher": negotiated(usher.port), "nginx": negotiated(nginx_tls)}

        throughput = [
            ("TLS keep-alive", "usher", lambda: wrk(usher, f"https://127.0.0.1:{usher.port}/bench/plain",
                                                     args.duration, 64)),
            ("TLS keep-alive", "nginx", lambda: wrk(nginx, f"https://127.0.0.1:{nginx_tls}/bench/plain",
                                                     args.duration, 64)),
            ("TLS, new connection per request", "usher",
             lambda: wrk(usher, f"https://127.0.0.1:{usher.port}/bench/plain", args.duration, 16,
                         ("Connection: close",))),
            ("TLS, new connection per request", "nginx",
             lambda: wrk(nginx, f"https://127.0.0.1:{nginx_tls}/bench/plain", args.duration, 16,
                         ("Connection: close",))),
            ("HTTP/2 over TLS (h2load -c16 -m10)", "usher",
             lambda: h2load(usher, f"https://127.0.0.1:{usher.port}/bench/plain", 100_000)),
            ("HTTP/2 over TLS (h2load -c16 -m10)", "nginx",
             lambda: h2load(nginx, f"https://127.0.0.1:{nginx_tls}/bench/plain", 100_000)),
        ]
        if "throughput" not in sections:
            throughput = []
        run.log("warming up")
        for _, _, measure in throughput:
            measure()
        samples = {(figure, target): [] for figure, target, _ in throughput}
        for round_number in range(1, args.rounds + 1):
            for figure, target, measure in throughput:
                result = measure()
                samples[(figure, target)].append(result)
                run.log(f"round {round_number} {figure} {target}: {result['rps']:,.0f} req/s, "
                        f"{result['cpu_us_per_request']:.1f} µs CPU/req")
        results["throughput"] = [{"figure": f, "target": t, "samples": s} for (f, t), s in samples.items()]

        latency = []
        for rate in map(int, args.rates.split(",")) if "latency" in sections else ():
            for target, process, url in (("usher", usher_plain, f"http://127.0.0.1:{usher_plain.port}/bench/plain"),
                                         ("nginx", nginx, f"http://127.0.0.1:{nginx_plain}/bench/plain")):
                rounds = [fixed_rate(oha, url, rate, args.duration * 2) for _ in range(3)]
                latency.append({"rate": rate, "target": target, "rounds": rounds})
                run.log(f"fixed rate {rate}/s {target}: " + ", ".join(
                    f"p99 {r['p99_ms']:.2f} ms" for r in rounds))
        results["latency"] = latency

        results["idle"] = {}
        if "idle" in sections:
            bare_port = run.free_port()
            bare = run.Process("bare-pingora-mimalloc", [str(run.TARGET / "release/examples/bare_proxy_mimalloc"),
                                                         f"127.0.0.1:{bare_port}", upstream_addr, "1"], role="proxy")
            processes.append(bare)
            run.wait_http(f"http://127.0.0.1:{bare_port}/", expect=200)
            results["idle"] = {
                "usher": idle_connections(usher_plain, usher_plain.port, args.idle),
                "bare Pingora (its default 64 KiB buffer)": idle_connections(bare, bare_port, args.idle),
                "nginx": idle_connections(nginx, nginx_plain, args.idle),
            }
            bare.stop()
        run.log(f"idle connections: {results['idle']}")
        for process in (usher, usher_plain):
            process.stop()

        scales = []
        counts = running_counts(work, upstream_addr) if "scale" in sections else None
        for scale in args.scales.split(",") if "scale" in sections else ():
            upstreams, routes = map(int, scale.split("x"))
            scales.append(scale_configuration(work, upstream_addr, counts, upstreams, routes))
            run.log(f"scale: {scales[-1]}")
        results["scale"] = scales
    finally:
        for process in processes:
            process.stop()
    report(args, results)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    run.log(f"raw results: {args.json}")
    shutil.rmtree(work, ignore_errors=True)


def median(samples, key):
    return statistics.median(s[key] for s in samples)


def report(args, results):
    print(f"# Edge figures, {time.strftime('%Y-%m-%d')}: Usher beside nginx, {args.placement}, "
          f"one worker each, {args.rounds} rounds\n")
    print(f"TLS: Usher {results['cipher']['usher']}, nginx {results['cipher']['nginx']} (same ECDSA P-256 certificate)\n")
    if results["throughput"]:
        print("| figure | Usher req/s | nginx req/s | Usher ÷ nginx | Usher CPU µs/req | nginx CPU µs/req |")
        print("|---|---|---|---|---|---|")
    by_figure = {}
    for entry in results["throughput"]:
        by_figure.setdefault(entry["figure"], {})[entry["target"]] = entry["samples"]
    for figure, targets in by_figure.items():
        u, n = targets["usher"], targets["nginx"]
        print(f"| {figure} | {median(u, 'rps'):,.0f} | {median(n, 'rps'):,.0f} | "
              f"{median(u, 'rps') / median(n, 'rps'):.2f} | {median(u, 'cpu_us_per_request'):.1f} | "
              f"{median(n, 'cpu_us_per_request'):.1f} |")
    if results["latency"]:
        print("\n| fixed rate (oha, latency-corrected, plain HTTP) | target | p50 ms | p99 ms | p99.9 ms | non-2xx |")
        print("|---|---|---|---|---|---|")
    for entry in results["latency"]:
        rounds = entry["rounds"]
        print(f"| {entry['rate']:,}/s | {entry['target']} | {median(rounds, 'p50_ms'):.2f} | "
              f"{median(rounds, 'p99_ms'):.2f} | {median(rounds, 'p999_ms'):.2f} | "
              f"{sum(r['non2xx'] for r in rounds)} |")
    if results["idle"]:
        print("\n| idle keep-alive connections | target | RSS before MiB | RSS after MiB | KiB per connection |")
        print("|---|---|---|---|---|")
    for target, idle in results["idle"].items():
        print(f"| {idle['connections']:,} | {target} | {idle['before_mib']:.1f} | {idle['after_mib']:.1f} | "
              f"{idle['kib_per_connection']:.1f} |")
    if results["scale"]:
        print("\n| upstreams | routes | Usher RSS MiB | reload ms (median of 3) |")
        print("|---|---|---|---|")
    for scale in results["scale"]:
        print(f"| {scale['upstreams']:,} | {scale['routes']:,} | {scale['rss_mib']:.1f} | {scale['reload_ms']:.0f} |")


if __name__ == "__main__":
    main()
