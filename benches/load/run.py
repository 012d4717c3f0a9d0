#!/usr/bin/env python3
"""Load benchmark: Usher against a bare Pingora proxy and nginx, side by side, in one run.

Every target forwards to the same fast upstream on loopback. Variants are measured in
alternating rounds (A B C ... A B C ...) so drift hits everyone equally, and each figure is
reported as the median over rounds with min and max. CPU time per request is read from
/proc (the target process and its children), which is steadier than requests/s on a
shared 2-core machine.

Placements: "pinned" (taskset) runs the proxy under test alone on core 1 with one worker
thread, and the load generator (wrk) and the upstream share core 0; "unpinned" lets the
kernel place everything, as a deployment does. Both are measured by default, one after the
other, each with its own processes.

Everything runs on 127.0.0.1, every run is bounded in time, and every process started here
is stopped by its PID at the end. See docs/benchmarks.md.
"""

import argparse
import base64
import functools
import hashlib
import hmac
import json
import os
import re
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

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
JWT_SECRET = "load-benchmark-secret-0123456789abcdef"
# The shipped payment webhooks' signing secret (STRIPE_WEBHOOK_SECRET), for the run.
WEBHOOK_SECRET = "whsec_load-benchmark-0123456789"
BODY = '{"id":"8f2c1a","event":"e-42","section":"A","row":7,"seat":12,"price_cents":4500,"status":"held"}'
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Where each role runs, per placement (None: wherever the kernel puts it).
# The bare Pingora builds the floor is taken from, by the example that is each.
BARE_PINGORA = {"bare-pingora": "bare_proxy", "bare-pingora-mimalloc": "bare_proxy_mimalloc"}
PLACEMENTS = {"pinned": {"proxy": "1", "load": "0"}, "unpinned": {"proxy": None, "load": None}}
placement = PLACEMENTS["pinned"]
# The shipped build of Usher is the release profile optimized with this trained profile
# (docs/benchmarks.md#profile-guided-build-2026-12-03); `usher_pgo = False` measures it without.
PGO_PROFILE = ROOT / "pgo" / "usher.profdata"
usher_pgo = True


@functools.cache
def usher_target(pgo):
    """Where Usher's release build is (target/release/usher under it), and the RUSTFLAGS it
    takes. The profile changes every crate, so the profile-guided build has a target
    directory of its own, one per profile: cargo would not rebuild registry crates when only
    the profile changed. Cached: each Usher a benchmark starts asks, and the profile is read
    and hashed once."""
    if not pgo:
        return TARGET, None
    digest = hashlib.sha256(PGO_PROFILE.read_bytes()).hexdigest()[:12]
    return TARGET / f"pgo-{digest}", f"-Cprofile-use={PGO_PROFILE}"


def usher_binary():
    """The Usher the benchmarks run: $USHER_BINARY when set (benches/load/pgo.sh runs its
    instrumented build so), otherwise the release build usher_pgo names."""
    if os.environ.get("USHER_BINARY"):
        return Path(os.environ["USHER_BINARY"])
    return usher_target(usher_pgo)[0] / "release" / "usher"


def build_usher():
    target, rustflags = usher_target(usher_pgo)
    env = {**os.environ, "CARGO_TARGET_DIR": str(target)}
    if rustflags:
        env["RUSTFLAGS"] = rustflags
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "usher"], cwd=ROOT, env=env, check=True)


def log(message):
    print(message, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=20.0, expect=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if expect is None or response.status == expect:
                    return
        except urllib.error.HTTPError as e:
            if expect is not None and e.code == expect:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def ensure_tool(command, package):
    if shutil.which(command):
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing {package} from Debian")
        subprocess.run(["apt-get", "install", "-y", "-qq", package], stdout=subprocess.DEVNULL, check=False)
    return shutil.which(command) is not None


def placed(command, role):
    """`command` on the cores the current placement gives `role` ("proxy" or "load")."""
    core = placement[role] if role else None
    if core is not None and shutil.which("taskset"):
        return ["taskset", "-c", core] + command
    return command


class Process:
    """A started process, measured through /proc together with its children."""

    def __init__(self, name, command, role=None, stdout=None, env=None):
        command = placed(command, role)
        self.name = name
        self.popen = subprocess.Popen(
            command, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        self.pid = self.popen.pid

    def tree(self):
        pids, frontier = [self.pid], [self.pid]
        while frontier:
            parent = frontier.pop()
            try:
                children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
            except OSError:
                children = []
            for child in map(int, children):
                pids.append(child)
                frontier.append(child)
        return pids

    def cpu_seconds(self):
        total = 0
        for pid in self.tree():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime + stime
            except (OSError, IndexError):
                pass
        return total / CLK_TCK

    def peak_rss_mib(self):
        return self.memory_mib("VmHWM:")

    def rss_mib(self):
        return self.memory_mib("VmRSS:")

    def memory_mib(self, field):
        """A memory field of /proc/<pid>/status (in KiB there), summed over the tree."""
        total = 0
        for pid in self.tree():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(field):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def stop(self):
        """Stops the process by PID: SIGTERM first (Usher drains and exits, and an
        instrumented build writes its profile, benches/load/pgo.sh), then SIGKILL for it and
        its children (nginx's workers would outlive a killed master)."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.popen.poll() is None:
            for pid in reversed(self.tree()[1:]):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)


def nginx_conf(directory, name, server_block):
    path = directory / f"{name}.conf"
    path.write_text(
        f"""
worker_processes 1;
daemon off;
user root;
pid {directory}/{name}.pid;
error_log {directory}/{name}-error.log warn;
worker_rlimit_nofile 24000;
events {{ worker_connections 20000; }}
http {{
  {server_block}
}}
"""
    )
    return path


def start_upstream(directory, nginx=True):
    """The benchmark's upstream on the load cores, answering every request with BODY: nginx,
    or the in-repo `bench_upstream` (`nginx=False`). Its `address` is set once it answers."""
    port = free_port()
    if nginx:
        upstream = start_nginx(directory, "upstream", f"""
  access_log off;
  server {{ listen 127.0.0.1:{port}; keepalive_requests 100000;
    location / {{ default_type application/json; return 200 '{BODY}'; }} }}""", "load")
    else:
        upstream = Process("upstream", [str(TARGET / "release/examples/bench_upstream"), f"127.0.0.1:{port}"],
                           role="load")
    try:
        wait_http(f"http://127.0.0.1:{port}/health", expect=200)
    except RuntimeError:
        upstream.stop()
        raise
    upstream.address = f"127.0.0.1:{port}"
    return upstream


def start_nginx(directory, name, server_block, role):
    conf = nginx_conf(directory, name, server_block)
    return Process(name, ["nginx", "-c", str(conf), "-p", str(directory)], role=role)


def usher_config(directory, name, public, admin, upstream, extra_routes=0, redis=None, routes=(), upstreams=(),
                 tls=None):
    """The shipped routes.yaml with every upstream pointed at the benchmark upstream, one
    worker thread, and public benchmark routes (unlimited, rate-limited, always refused);
    optionally 1,000 more routes, a caller's own `routes` and `upstreams` (YAML flow
    mappings, `name: {...}` for an upstream), Redis as the rate-limit store, and TLS (a
    `(cert, key)` pair) on the public listener."""
    shipped = (ROOT / "routes.yaml").read_text()
    # The request-body schemas it names, beside it.
    shutil.copytree(ROOT / "schemas", directory / "schemas", dirs_exist_ok=True)
    text = re.sub(r'targets: \["[^"]+"\]', f'targets: ["{upstream}"]', shipped)
    text = re.sub(r'address: "0\.0\.0\.0:8080"', f'address: "127.0.0.1:{public}"', text)
    text = re.sub(r'address: "0\.0\.0\.0:9090"', f'address: "127.0.0.1:{admin}"', text)
    text = text.replace("threads: 2", "threads: 1")
    if tls:
        text = text.replace(f'address: "127.0.0.1:{public}"\n',
                            f'address: "127.0.0.1:{public}"\n    tls: {{ cert_file: "{tls[0]}", key_file: "{tls[1]}" }}\n', 1)
    if upstreams:
        text = text.replace("\nupstreams:\n", "\nupstreams:\n" + "".join(f"  {u}\n" for u in upstreams), 1)
    keys = directory / "api-keys.yaml"
    keys.write_text("keys: []\n")
    text = text.replace("/etc/usher/secrets/api-keys.yaml", str(keys))
    # Usher's signing key for the minting pool, made for the run.
    signing = directory / "signing-key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(signing)], check=True,
                   capture_output=True)
    text = text.replace("/etc/usher/signing/usher-1.pem", str(signing))
    # A limit no run reaches (every request is counted and admitted; a 1 s window keeps the
    # log small) and one every request after the first exceeds.
    text = text.replace("  policies:\n", "  policies:\n"
                        "    bench: { limit: 1000000000, window: 1s, key: [client], tiered: false }\n"
                        "    bench-refuse: { limit: 1, window: 1h, key: [client], tiered: false }\n", 1)
    # The shipped file shares counts through Redis; the benchmark's Usher either runs
    # without it (local store) or with the benchmark's own redis-server.
    text = re.sub(r"^  redis: .*\n", f"  redis: {redis}\n" if redis else "", text, count=1, flags=re.M)
    # Revoked tokens: in the benchmark's Redis (answers cached per jti for the shipped
    # cache_ttl), or without Redis from an empty file.
    if not redis:
        revoked = directory / "revoked-tokens"
        revoked.write_text("")
        text = text.replace('    key_template: "session:blacklist:{jti}"\n', f'    file: "{revoked}"\n', 1)
    # The services asked about callers (user status, venue access) are the upstream too: it
    # answers 200, so every caller is active (answers are cached, as in production).
    text = re.sub(r'url: "http://[a-z-]+:\d+/internal/', f'url: "http://{upstream}/internal/', text)
    unlimited = "default_rate_limits: false"
    # The benchmark routes go at the end of `routes`, before the aliases.
    text, aliases, rest = text.partition("\naliases:")
    text = text.rstrip() + f"\n  - {{ name: bench-plain, match: {{ path: /bench/plain }}, upstream: tickets, public: true, {unlimited} }}\n"
    text += f"  - {{ name: bench-auth, match: {{ path: /bench/auth }}, upstream: tickets, {unlimited} }}\n"
    text += f"  - {{ name: bench-full, match: {{ path: /bench/full }}, upstream: tickets, {unlimited}, rate_limits: [bench] }}\n"
    text += f"  - {{ name: bench-limited, match: {{ path: /bench/limited }}, upstream: tickets, public: true, {unlimited}, rate_limits: [bench] }}\n"
    text += f"  - {{ name: bench-refused, match: {{ path: /bench/refused }}, upstream: tickets, public: true, {unlimited}, rate_limits: [bench-refuse] }}\n"
    for n in range(extra_routes):
        text += f"  - {{ name: gen{n}, match: {{ path: /gen/svc{n}/:id }}, upstream: tickets, public: true, {unlimited} }}\n"
    for route in routes:
        text += f"  - {route}\n"
    text += aliases + rest
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def start_usher(directory, name, upstream, extra_routes=0, redis=None, routes=(), program=None, env=(),
                upstreams=(), tls=None, startup_timeout=20.0):
    """Usher (or `program`, a command the config file's path is appended to) on the
    benchmark's configuration (usher_config), with `env` added to its environment."""
    public, admin = free_port(), free_port()
    config = usher_config(directory, name, public, admin, upstream, extra_routes, redis, routes, upstreams, tls)
    # Not beside the configuration: its watcher wakes on every change in that directory
    # (docs/routes.md#reloading), where a deployment's logs never are.
    logs = directory / "logs"
    logs.mkdir(exist_ok=True)
    access_log = open(logs / f"{name}-access.log", "wb")
    program = program or [str(usher_binary()), "run", "--config"]
    process = Process(name, [*program, str(config)], role="proxy", stdout=access_log,
                      env={**os.environ, **dict(env), "USHER_LOG": "warn", "JWT_SECRET": JWT_SECRET,
                           "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                           "USHER_CORS_ORIGINS": "https://app.bench.example", "USHER_REPLICAS": "1"})
    try:
        wait_http(f"http://127.0.0.1:{admin}/health/startup", timeout=startup_timeout, expect=200)
    except RuntimeError:
        process.stop()
        raise
    process.port, process.admin, process.config = public, admin, config
    return process


REDIS_PASSWORD = "load-benchmark-redis-password"


def start_redis(directory):
    """A redis-server on a free loopback port (sharing the load core), without persistence."""
    port = free_port()
    (directory / "redis-password").write_text(REDIS_PASSWORD + "\n")
    process = Process("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                "--requirepass", REDIS_PASSWORD, "--save", "", "--appendonly", "no",
                                "--dir", str(directory)], role="load")
    process.port = port
    deadline = time.time() + 10
    while redis_cli(port, "PING").strip() != "PONG":
        if time.time() > deadline:
            process.stop()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    settings = f'{{ url: "redis://127.0.0.1:{port}", password_file: "{directory / "redis-password"}", timeout: 50ms }}'
    return process, settings


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "-a", REDIS_PASSWORD,
                           "--no-auth-warning", *args], capture_output=True, text=True).stdout


def redis_calls(port, command):
    m = re.search(rf"^cmdstat_{command}:calls=(\d+)", redis_cli(port, "INFO", "commandstats"), re.M)
    return int(m.group(1)) if m else 0


def bench_token():
    """An HS256 access token for the shipped configuration's issuer and audience."""
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "primary"}).encode())
    claims = b64(json.dumps({
        "sub": "bench-user", "tenant_id": "tenant-bench", "roles": ["customer"], "type": "access",
        "iss": "tickettoken-auth", "aud": "tickettoken-api", "iat": now, "exp": now + 3600,
        "jti": "bench-token",
    }).encode())
    signature = hmac.new(JWT_SECRET.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(output):
    def latency(percent):
        m = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")

    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": latency(50),
        "p99_ms": latency(99),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
    }


def wrk_command(port, path, duration, connections, headers=()):
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    for header in headers:
        command += ["-H", header]
    command.append(f"http://127.0.0.1:{port}{path}")
    return placed(command, "load")


def measure(process, port, path, duration, connections, headers=(), store=None):
    """One wrk run against `process`: its req/s, latency, and CPU per request; with `store`
    (the redis-server the target asks), that process's CPU per request too, since it runs on
    the same cores."""
    cpu_before = process.cpu_seconds()
    store_before = store.cpu_seconds() if store else 0.0
    output = subprocess.run(
        wrk_command(port, path, duration, connections, headers),
        capture_output=True, text=True, timeout=duration + 30, check=True,
    ).stdout
    result = parse_wrk(output)
    requests = max(result["requests"], 1)
    result["cpu_us_per_request"] = (process.cpu_seconds() - cpu_before) * 1e6 / requests
    if store:
        result["store_cpu_us_per_request"] = (store.cpu_seconds() - store_before) * 1e6 / requests
    return result


def reload_storm(usher, duration, connections, rate_hz=10):
    """Load on the plain route while the config is reloaded `rate_hz` times a second."""
    command = wrk_command(usher.port, "/bench/plain", duration, connections)
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    sent = 0
    deadline = time.time() + duration
    while time.time() < deadline and wrk.poll() is None:
        os.kill(usher.pid, signal.SIGHUP)  # taskset execs, so this is Usher itself
        sent += 1
        time.sleep(1 / rate_hz)
    output, _ = wrk.communicate(timeout=duration + 30)
    result = parse_wrk(output)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{usher.admin}/metrics", timeout=2).read().decode()
    m = re.search(r'usher_config_reloads_total\{result="success"\} (\d+)', metrics)
    result["reloads"] = int(m.group(1)) if m else 0
    result["sighups"] = sent
    return result


def summarize(samples, key):
    values = [s[key] for s in samples]
    return statistics.median(values), min(values), max(values)


def start_targets(work, args, have_nginx, processes):
    """Starts every process the current placement measures, each added to `processes` as it
    starts (so the caller stops them all, whatever fails), and returns the targets:
    (name, process, path, headers)."""
    upstream = start_upstream(work, nginx=have_nginx)
    processes.append(upstream)
    upstream_addr = upstream.address

    redis, redis_settings = start_redis(work)
    processes.append(redis)
    usher = start_usher(work, "usher", upstream_addr)
    processes.append(usher)
    usher_1k = start_usher(work, "usher-1k-routes", upstream_addr, extra_routes=1000)
    processes.append(usher_1k)
    usher_redis = start_usher(work, "usher-redis", upstream_addr, redis=redis_settings)
    processes.append(usher_redis)
    targets = [("usher", usher, "/bench/plain", ())]
    for name, example in BARE_PINGORA.items():
        port = free_port()
        bare = Process(name, [str(TARGET / "release/examples" / example), f"127.0.0.1:{port}", upstream_addr, "1"],
                       role="proxy")
        bare.port = port
        processes.append(bare)
        wait_http(f"http://127.0.0.1:{port}/", expect=200)
        targets.append((name, bare, "/bench/plain", ()))
    if have_nginx:
        nginx_port = free_port()
        nginx = start_nginx(work, "nginx-proxy", f"""
  access_log {work}/nginx-access.log combined buffer=64k flush=1s;
  upstream backend {{ server {upstream_addr}; keepalive 64; }}
  server {{ listen 127.0.0.1:{nginx_port}; keepalive_requests 100000;
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}""",
                            "proxy")
        nginx.port = nginx_port
        processes.append(nginx)
        wait_http(f"http://127.0.0.1:{nginx_port}/", expect=200)
        targets.append(("nginx", nginx, "/bench/plain", ()))
    bearer = (f"Authorization: Bearer {bench_token()}",)
    targets += [
        ("usher-jwt", usher, "/bench/auth", bearer),
        ("usher-full", usher, "/bench/full", bearer),
        ("usher-1k-routes", usher_1k, "/bench/plain", ()),
        ("usher-limited-local", usher, "/bench/limited", ()),
        ("usher-limited-redis", usher_redis, "/bench/limited", ()),
        ("usher-redis-unlimited", usher_redis, "/bench/plain", ()),
        ("usher-jwt-redis", usher_redis, "/bench/auth", bearer),
        ("usher-429", usher, "/bench/refused", ()),
        ("usher-401", usher, "/api/v1/venues/7", ()),
        ("usher-404", usher, "/nope", ()),
    ]
    return targets, usher, usher_redis, redis


def run_placement(work, args, have_nginx):
    """Starts the current placement's processes, measures every target in alternating
    rounds, then a reload storm, and stops them all."""
    processes = []
    try:
        targets, usher, usher_redis, redis = start_targets(work, args, have_nginx, processes)
        log("warming up")
        for name, process, path, headers in targets:
            measure(process, process.port, path, 1, args.connections, headers)
        samples = {name: [] for name, *_ in targets}
        # Every decision of the Redis-backed route should be exactly one EVALSHA.
        redis_cli(redis.port, "CONFIG", "RESETSTAT")
        for round_number in range(1, args.rounds + 1):
            for name, process, path, headers in targets:
                store = redis if process is usher_redis else None
                result = measure(process, process.port, path, args.duration, args.connections, headers, store)
                samples[name].append(result)
                log(f"round {round_number} {name:21} {result['rps']:9.0f} req/s  "
                    f"{result['cpu_us_per_request']:5.1f} µs CPU/req  p99 {result['p99_ms']:.2f} ms")
        round_trips = {
            "evalsha": redis_calls(redis.port, "evalsha"),
            "eval": redis_calls(redis.port, "eval"),
            "requests": sum(r["requests"] for r in samples["usher-limited-redis"]),
        }
        log("reload storm: SIGHUP 10 times a second under load")
        storm = reload_storm(usher, max(args.duration * 2, 10), args.connections)
        peak_rss = {p.name: p.peak_rss_mib() for p in processes}
    finally:
        for process in processes:
            process.stop()
    return {"samples": samples, "reload_storm": storm, "peak_rss_mib": peak_rss, "redis_round_trips": round_trips}


def main():
    global placement
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--placements", default="unpinned,pinned",
                        help="comma-separated, of: " + ", ".join(PLACEMENTS))
    parser.add_argument("--json", type=Path, default=TARGET / "load-results.json")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--no-pgo", action="store_true",
                        help="measure Usher's release build without the trained profile (pgo/)")
    args = parser.parse_args()
    if args.rounds < 1 or args.duration < 1:
        parser.error("rounds and duration must be at least 1")
    placements = args.placements.split(",")
    if not placements or any(p not in PLACEMENTS for p in placements):
        parser.error(f"--placements takes {', '.join(PLACEMENTS)}")

    if not ensure_tool("wrk", "wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    if not ensure_tool("redis-server", "redis-server"):
        sys.exit("redis-server is needed: apt-get install redis-server")
    have_nginx = ensure_tool("nginx", "nginx-light")
    if not have_nginx:
        log("nginx is not available: the nginx proxy is skipped and the in-repo upstream is used")
    global usher_pgo
    usher_pgo = not args.no_pgo
    if not args.no_build:
        log("building release binaries (the release profile: fat LTO, one codegen unit; Usher "
            + ("without its profile)" if args.no_pgo else "also profile-guided, pgo/)"))
        examples = [arg for name in [*BARE_PINGORA.values(), "bench_upstream"] for arg in ("--example", name)]
        subprocess.run(["cargo", "build", "--release", "--locked", *examples], cwd=ROOT, check=True)
        build_usher()

    work = Path(tempfile.mkdtemp(prefix="usher-load-"))
    results = {}
    for name in placements:
        placement = PLACEMENTS[name]
        log(f"placement: {name}")
        results[name] = run_placement(work, args, have_nginx)
    report(args, results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    log(f"raw results: {args.json}")
    shutil.rmtree(work, ignore_errors=True)


def placement_line(name):
    cores = PLACEMENTS[name]
    if cores["proxy"] is None:
        return "nothing pinned: the kernel places the proxy, wrk and the upstream"
    return f"proxy alone on core {cores['proxy']}, wrk and upstream on core {cores['load']}"


def report(args, results):
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s+(.*)", cpu)
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"# Load benchmark, {time.strftime('%Y-%m-%d')}")
    print(f"machine: {os.cpu_count()} cores ({model.group(1) if model else 'unknown'}), {memory_gib:.0f} GiB; "
          f"{args.rounds} rounds x {args.duration}s, wrk -t1 -c{args.connections}; one worker thread per proxy; "
          f"release profile (fat LTO, one codegen unit) for Usher and bare Pingora, Usher "
          f"{'profile-guided (pgo/)' if usher_pgo else 'without its profile'}")
    for name, result in results.items():
        report_placement(name, result)


def report_placement(name, result):
    samples = result["samples"]
    median = {target: {key: summarize(runs, key)[0] for key in ("rps", "cpu_us_per_request")}
              for target, runs in samples.items()}
    # Bare Pingora at its best: whichever allocator served more.
    floor_name = max(BARE_PINGORA, key=lambda target: median[target]["rps"])
    base = median[floor_name]
    nginx = median.get("nginx")
    print(f"\n## {name}: {placement_line(name)}\n")
    print(f"× bare: against {floor_name}, the better bare Pingora in this run\n")
    print("| target | req/s median (min–max) | p50 ms | p99 ms | CPU µs/req | × bare rps | × bare CPU | × nginx rps |")
    print("|---|---|---|---|---|---|---|---|")
    for target, runs in samples.items():
        rps, rps_min, rps_max = summarize(runs, "rps")
        cpu_us = median[target]["cpu_us_per_request"]
        vs_nginx = f"{rps / nginx['rps']:.2f}" if nginx else "–"
        print(f"| {target} | {rps:,.0f} ({rps_min:,.0f}–{rps_max:,.0f}) | {summarize(runs, 'p50_ms')[0]:.2f} | "
              f"{summarize(runs, 'p99_ms')[0]:.2f} | {cpu_us:.1f} | {rps / base['rps']:.2f} | "
              f"{cpu_us / base['cpu_us_per_request']:.2f} | {vs_nginx} |")
    storm, peak_rss, round_trips = result["reload_storm"], result["peak_rss_mib"], result["redis_round_trips"]
    print(f"\nreload storm: {storm['sighups']} SIGHUPs, {storm['reloads']} reloads, {storm['requests']:,} requests, "
          f"{storm['non2xx']} non-2xx, {storm['socket_errors']} socket errors, {storm['rps']:,.0f} req/s")
    print("peak RSS (MiB): " + ", ".join(f"{process} {mib:.1f}" for process, mib in peak_rss.items()))
    redis_rps = median["usher-limited-redis"]["rps"]
    print(f"rate-limited via Redis: {redis_rps / median['usher-redis-unlimited']['rps']:.2f}x the same process's "
          f"unlimited route's req/s; {round_trips['evalsha']:,} EVALSHA and {round_trips['eval']} EVAL for "
          f"{round_trips['requests']:,} requests counted by wrk "
          f"({round_trips['evalsha'] / max(round_trips['requests'], 1):.3f} per request)")
    store_cpu = {target: summarize(samples[target], "store_cpu_us_per_request")[0]
                 for target in ("usher-limited-redis", "usher-redis-unlimited")}
    print(f"redis-server's CPU per request, on the same cores: {store_cpu['usher-limited-redis']:.1f} µs on the "
          f"Redis-limited route, {store_cpu['usher-redis-unlimited']:.1f} µs on the unlimited one")


if __name__ == "__main__":
    main()
