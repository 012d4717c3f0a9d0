#!/bin/bash
# Instructions per request, counted by callgrind: the figures of docs/benchmarks.md
# ("What profiling found"), which do not depend on what else the machine is doing.
#
#   benches/load/instructions.sh BINARY KIND
#
# BINARY is a release build of Usher (target/pgo-*/release/usher, the profile-guided one
# run.py builds; target/release/usher without the profile) or, with KIND `bare`, of
# examples/bare_proxy_mimalloc. KIND is one of:
#   plain    a public route, no rate limit
#   jwt      an HS256-authenticated route (the token cache warm)
#   full     load.py's full pipeline: the shipped routes.yaml as run.py rewrites it (JWT,
#            tenant, local rate limit, revocation, caller lookups), route /bench/full
#   redis    a public route limited through a local redis-server, then the same process's
#            unlimited route
#   bare     bare Pingora
#
# nginx answers on 127.0.0.1:18081 with keep-alive; Usher (or bare Pingora) runs under
# callgrind on 127.0.0.1:18080 with one worker thread and its access log on, written outside
# the configuration's directory. Counting is on only for 10 s of `wrk -t1 -c10` after a 3 s
# warm-up; every process started here is stopped by its PID. Needs valgrind, nginx, wrk,
# curl, python3 (and redis-server for `redis`). The dumps stay in the directory it prints,
# for callgrind_annotate.
#
# With PGO_PROFILE_FILE set (an LLVM_PROFILE_FILE pattern), BINARY is an instrumented build
# and runs natively instead: benches/load/pgo.sh trains the shipped profile on these same
# scenarios, and the profile is written when the process is stopped.
set -euo pipefail
BIN=$(realpath "$1")
KIND=$2
DIR=$(mktemp -d /tmp/usher-instructions.XXXXXX)
chmod 755 "$DIR"  # nginx's worker reads the page as another user
mkdir -p "$DIR/html" "$DIR/cfg" "$DIR/logs"
PIDS=()
stop() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # A training run leaves nothing to annotate.
    if [ -n "${PGO_PROFILE_FILE:-}" ]; then rm -rf "$DIR"; fi
}
trap stop EXIT

echo '{"id":"8f2c1a","event":"e-42","section":"A","row":7,"seat":12,"price_cents":4500,"status":"held"}' \
    > "$DIR/html/index.html"
cat > "$DIR/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $DIR/nginx.pid; error_log $DIR/nginx-error.log;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:18081; keepalive_requests 1000000;
       location = /index.html { root $DIR/html; }
       location / { default_type application/json; return 200 '$(cat "$DIR/html/index.html")'; } } }
NGX
nginx -c "$DIR/nginx.conf" &
PIDS+=($!)

SECRET=0123456789abcdef0123456789abcdef-callgrind
printf %s "$SECRET" > "$DIR/cfg/jwt-secret"
cat > "$DIR/cfg/routes.yaml" <<YAML
server: { threads: 1, access_log: true }
listeners:
  public: { address: "127.0.0.1:18080" }
  admin: { address: "127.0.0.1:18090" }
authentication:
  jwt: { issuer: i, audiences: [a], keys: [{ algorithm: HS256, secret_file: "$DIR/cfg/jwt-secret" }] }
upstreams:
  svc: { targets: ["127.0.0.1:18081"], health_check: { type: tcp, interval: 10s } }
routes:
  - { name: plain, match: { path: /index.html }, upstream: svc, public: true }
  - { name: jwt, match: { path: /jwt }, upstream: svc, rewrite: { replace_prefix: /index.html } }
YAML
if [ "$KIND" = redis ]; then
    # A limit no run reaches, shared through Redis: every request is one decision.
    printf %s instructions-redis-password > "$DIR/cfg/redis-password"
    redis-server --port 18379 --bind 127.0.0.1 --requirepass instructions-redis-password \
        --save "" --appendonly no --dir "$DIR" > /dev/null &
    PIDS+=($!)
    cat >> "$DIR/cfg/routes.yaml" <<YAML
  - { name: limited, match: { path: /limited }, upstream: svc, public: true, rate_limits: [bench], rewrite: { replace_prefix: /index.html } }
rate_limiting:
  redis: { url: "redis://127.0.0.1:18379", password_file: "$DIR/cfg/redis-password", timeout: 50ms }
  policies:
    bench: { limit: 1000000000, window: 1s, key: [client], tiered: false }
YAML
fi
TOKEN=$(python3 - "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=").decode()
now = int(time.time())
head = b({"alg": "HS256", "typ": "JWT"})
claims = b({"sub": "u1", "tenant_id": "t1", "roles": ["customer"], "type": "access", "iss": "i",
            "aud": "a", "iat": now, "exp": now + 3600, "jti": "j1"})
mac = hmac.new(sys.argv[1].encode(), f"{head}.{claims}".encode(), hashlib.sha256).digest()
print(f"{head}.{claims}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}")
PY
)

if [ "$KIND" = full ]; then
    # run.py's own configuration of the full pipeline, on this script's ports.
    eval "$(python3 - "$DIR" "$(dirname "$0")" <<'PY'
import shlex, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import run
config = run.usher_config(Path(sys.argv[1]) / "cfg", "full", 18080, 18090, "127.0.0.1:18081")
print(f"FULL_CONFIG={shlex.quote(str(config))} TOKEN={shlex.quote(run.bench_token())}")
print(f"export JWT_SECRET={shlex.quote(run.JWT_SECRET)} STRIPE_WEBHOOK_SECRET={shlex.quote(run.WEBHOOK_SECRET)}")
print("export USHER_CORS_ORIGINS=https://app.bench.example USHER_REPLICAS=1 USHER_LOG=warn")
PY
)"
fi

READY=index.html
case $KIND in
    bare) ARGS=(127.0.0.1:18080 127.0.0.1:18081 1); PATHS=(index.html) ;;
    plain) ARGS=(run --config "$DIR/cfg/routes.yaml"); PATHS=(index.html) ;;
    jwt) ARGS=(run --config "$DIR/cfg/routes.yaml"); PATHS=(jwt) ;;
    full) ARGS=(run --config "$FULL_CONFIG"); PATHS=(bench/full); READY=bench/plain ;;
    redis) ARGS=(run --config "$DIR/cfg/routes.yaml"); PATHS=(limited index.html) ;;
    *) echo "unknown kind $KIND" >&2; exit 2 ;;
esac
if [ -n "${PGO_PROFILE_FILE:-}" ]; then
    LLVM_PROFILE_FILE=$PGO_PROFILE_FILE "$BIN" "${ARGS[@]}" > "$DIR/logs/access.log" 2> "$DIR/logs/stderr.log" &
else
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$DIR/callgrind.%p" \
        "$BIN" "${ARGS[@]}" > "$DIR/logs/access.log" 2> "$DIR/logs/stderr.log" &
fi
VG=$!
PIDS+=($VG)
callgrind() { [ -n "${PGO_PROFILE_FILE:-}" ] || callgrind_control "$@" "$VG" > /dev/null; }
for _ in $(seq 1 120); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18080/$READY)" = 200 ] && break
    sleep 0.5
done

for path in "${PATHS[@]}"; do
    HEADERS=()
    case $path in jwt | bench/full) HEADERS=(-H "Authorization: Bearer $TOKEN") ;; esac
    URL=http://127.0.0.1:18080/$path
    status=$(curl -s -o /dev/null -w '%{http_code}' "${HEADERS[@]}" "$URL")
    [ "$status" = 200 ] || { echo "$URL answered $status" >&2; exit 1; }
    wrk -t1 -c10 -d3s "${HEADERS[@]}" "$URL" > /dev/null
    callgrind -z
    callgrind -i on
    wrk -t1 -c10 -d10s "${HEADERS[@]}" "$URL" > "$DIR/wrk.txt"
    callgrind -i off
    requests=$(awk '/requests in/ {print $1}' "$DIR/wrk.txt")
    if [ -n "${PGO_PROFILE_FILE:-}" ]; then
        echo "$KIND /$path: $requests requests (profile training)"
        continue
    fi
    callgrind -d
    sleep 1
    dump=$(ls -t "$DIR"/callgrind.* | head -1)
    total=$(callgrind_annotate "$dump" 2> /dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    echo "$KIND /$path: $requests requests, $((total / requests)) instructions per request ($dump)"
done
