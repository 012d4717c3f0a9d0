#!/usr/bin/env python3
"""Checks the Helm chart with Helm's own engine (helm-python-sdk, no helm binary), offline:
lint --strict and render with the default and a production-like values file, then assert on
the rendered manifests. Usage: check_chart.py <path to the usher binary>. Exits non-zero on
the first failed check; every process it starts is stopped before it exits."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "usher"
USHER = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target" / "debug" / "usher")
# The Kubernetes versions the chart supports (docs/operations.md): every object it renders
# is validated against each one's API schemas, strictly (no unknown fields). The Prometheus
# Operator's kinds have no schema there.
KUBERNETES_VERSIONS = ["1.29.0", "1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0"]
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def check(condition, message):
    if not condition:
        sys.exit(f"chart check failed: {message}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(values):
    report = helm.lint(str(CHART), values, strict=True)
    problems = report.get("errors", []) + [m for m in report.get("messages", []) if m["severity"] >= 2]
    check(not problems, f"helm lint --strict: {problems}")
    manifests = helm.Chart.load(str(CHART)).render(values, name="usher", namespace="gateway")
    objects = [doc for text in manifests.values() for doc in yaml.safe_load_all(text) if doc]
    return manifests, objects


def one(objects, kind, suffix=""):
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    check(len(found) == 1, f"expected one {kind}{suffix}, found {len(found)}")
    return found[0]


def check_release(values, label):
    manifests, objects = render(values)
    for version in KUBERNETES_VERSIONS:
        for obj in objects:
            if obj["kind"] in OPERATOR_KINDS:
                continue
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                check(False, f"{label}: {obj['kind']} {obj['metadata']['name']} is not valid Kubernetes {version}: {error.message}")
    deployment = one(objects, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    routes_text = one(objects, "ConfigMap", "-routes")["data"]["routes.yaml"]
    routes = yaml.safe_load(routes_text)
    check(ports["admin"] == int(routes["listeners"]["admin"]["address"].rsplit(":", 1)[1]), f"{label}: admin port")
    check(ports["http"] == int(routes["listeners"]["public"]["address"].rsplit(":", 1)[1]), f"{label}: public port")
    for probe, path in [("startupProbe", "/health/startup"), ("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")]:
        get = container[probe]["httpGet"]
        check(get["path"] == path and get["port"] == "admin", f"{label}: {probe} {get}")
    security = container["securityContext"]
    check(security["readOnlyRootFilesystem"] and security["capabilities"]["drop"] == ["ALL"], f"{label}: securityContext")
    check(deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], f"{label}: runAsNonRoot")
    check("/etc/usher/config/routes.yaml" in container["args"], f"{label}: --config")
    # The ConfigMap, laid out as the Deployment mounts it, is one `usher check` accepts,
    # with every file it names beside it (the body schemas).
    config_map = one(objects, "ConfigMap", "-routes")["data"]
    volumes_spec = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    items = volumes_spec["routes"]["configMap"]["items"]
    with tempfile.TemporaryDirectory() as mounted:
        for item in items:
            target = Path(mounted) / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(config_map[item["key"]])
        result = subprocess.run([USHER, "check", str(Path(mounted) / "routes.yaml")], capture_output=True, text=True)
        check(result.returncode == 0, f"{label}: usher check refused the ConfigMap: {result.stderr}")
        check("body_schema" not in result.stderr, f"{label}: a body schema is not mounted: {result.stderr}")
    # Everything routes.yaml needs from the environment is wired to a Secret: every
    # secret_env to an env var from a secretKeyRef, every key or API key file to a path
    # under a Secret volume. (usher check above validates the file itself.)
    env_from_secret = {e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    secret_paths = [m["mountPath"] for m in container["volumeMounts"] if "secret" in volumes[m["name"]]]
    auth = routes.get("authentication") or {}
    needed_files = [(auth.get("api_keys") or {}).get("file")]
    redis = (routes.get("rate_limiting") or {}).get("redis") or {}
    needed_env = [redis.get("url_env"), redis.get("password_env")]
    needed_files += [redis.get("password_file")]
    for key in (auth.get("jwt") or {}).get("keys", []):
        needed_env.append(key.get("secret_env"))
        needed_files += [key.get("secret_file"), key.get("public_key_file")]
    for key in (routes.get("signing") or {}).get("keys", []):
        needed_files.append(key.get("private_key_file"))
    for route in routes.get("routes") or []:
        for secret in (route.get("webhook") or {}).get("secrets", []):
            needed_env.append(secret.get("env"))
            needed_files.append(secret.get("file"))
    for name in filter(None, needed_env):
        check(name in env_from_secret, f"{label}: {name} is not set from a Secret")
    for path in filter(None, needed_files):
        check(any(path.startswith(mount + "/") for mount in secret_paths), f"{label}: {path} is not on a mounted Secret")
    # What routes.yaml takes from the environment besides secrets comes from the values:
    # the replica count (the autoscaler's maximum when it runs) and the CORS origins.
    plain = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    values = values or {}
    scaling = values.get("autoscaling") or {}
    replicas = scaling.get("maxReplicas", 10) if scaling.get("enabled") else values.get("replicaCount", 2)
    if redis.get("replicas_env"):
        check(plain.get(redis["replicas_env"]) == str(replicas), f"{label}: {redis['replicas_env']} is {plain.get(redis['replicas_env'])}, not {replicas}")
    origins_env = (routes.get("cors") or {}).get("allowed_origins_env")
    if origins_env:
        origins = (values.get("cors") or {}).get("allowedOrigins", ["http://frontend:5173"])
        check(plain.get(origins_env) == ",".join(origins), f"{label}: {origins_env} is {plain.get(origins_env)}")
    # Traces: the values' endpoint and sampler in the standard variables Usher reads, or
    # none of them without an endpoint.
    tracing = {"endpoint": "", "sampler": "parentbased_traceidratio", "samplerArg": "0.1", "env": [],
               **(values.get("tracing") or {})}
    otel = {name: value for name, value in plain.items() if name.startswith("OTEL_")}
    if tracing["endpoint"]:
        check(otel.get("OTEL_EXPORTER_OTLP_ENDPOINT") == tracing["endpoint"], f"{label}: trace endpoint {otel}")
        check(otel.get("OTEL_TRACES_SAMPLER") == tracing["sampler"], f"{label}: sampler {otel}")
        check(otel.get("OTEL_TRACES_SAMPLER_ARG") == tracing["samplerArg"], f"{label}: sampler argument {otel}")
        check("k8s.pod.name=$(K8S_POD_NAME)" in otel.get("OTEL_RESOURCE_ATTRIBUTES", ""), f"{label}: resource {otel}")
        names = [e["name"] for e in container["env"]]
        for extra in tracing["env"]:
            check(extra["name"] in names, f"{label}: {extra['name']} from tracing.env is not set")
    else:
        check(not otel, f"{label}: tracing is off, yet {sorted(otel)} are set")
    # Secrets only by reference.
    check(not [o for o in objects if o["kind"] == "Secret"], f"{label}: a Secret is rendered")
    # The tracing settings the chart writes are configuration, the pod's name and namespace
    # come from the API, and a variable from tracing.env is the operator's (its headers,
    # which may hold a collector's key, only from a Secret).
    rendered = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
                "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"}
    operators = {e["name"] for e in tracing["env"] if not e["name"].endswith("_HEADERS")}
    for env in container.get("env", []):
        if env["name"].endswith("_HEADERS"):
            check("secretKeyRef" in env.get("valueFrom", {}), f"{label}: {env['name']} is not from a Secret")
        is_tracing = (env["name"] in rendered | operators and "value" in env
                      or env["name"] in ("K8S_POD_NAME", "K8S_NAMESPACE") and "fieldRef" in env.get("valueFrom", {}))
        is_config = env["name"] in (redis.get("replicas_env"), origins_env) or is_tracing
        check(is_config or ("value" not in env and "secretKeyRef" in env.get("valueFrom", {})), f"{label}: env {env['name']} is not a secret reference")
    return manifests, objects


def metric_families(names_from):
    return {re.sub(r"_(bucket|count|sum)$", "", m) for m in re.findall(r"usher_[a-z_]+", names_from)}


def prometheus_answers(admin, work, queries, traffic):
    """A real Prometheus server (Debian's) scrapes Usher's admin port every second while
    `traffic()` sends a few requests between scrapes; once it has a few scrapes, each query
    is evaluated through its HTTP API. Returns, per query, the API's answer (status, and
    the result or the error)."""
    port = free_port()
    config = work / "prometheus.yml"
    config.write_text(f"""
global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
scrape_configs:
  - job_name: usher
    static_configs: [{{ targets: ["127.0.0.1:{admin}"] }}]
""")
    prometheus = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/v1/query?query="

    def query(expr):
        try:
            with urllib.request.urlopen(base + urllib.parse.quote(expr), timeout=5) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as e:  # 400 for an expression that does not parse
            return json.loads(e.read())

    try:
        deadline = time.time() + 30
        scrapes = 0
        while time.time() < deadline and scrapes < 5:
            traffic()
            time.sleep(0.5)
            try:
                result = query('count_over_time(up{job="usher"}[1m])')["data"]["result"]
                scrapes = int(result[0]["value"][1]) if result else 0
            except (OSError, KeyError, ValueError):
                pass
        check(scrapes >= 5, f"Prometheus scraped Usher {scrapes} times in 30 s")
        up = query('up{job="usher"}')["data"]["result"]
        check(up and up[0]["value"][1] == "1", f"Prometheus does not see Usher up: {up}")
        # The traffic between scrapes shows as a rate, not only as series that exist.
        live = query('sum(rate(usher_http_requests_total{route="live"}[1m]))')["data"]["result"]
        check(live and float(live[0]["value"][1]) > 0, f"Prometheus saw no request rate: {live}")
        return {expr: query(expr) for expr in queries}
    finally:
        prometheus.kill()
        prometheus.wait()


def exported_families(queries=()):
    """Runs Usher against a tiny scenario that touches every metric family, then reads
    /metrics, and has a real Prometheus scrape it and evaluate `queries`."""
    work = Path(tempfile.mkdtemp())
    upstream_port, public, admin, dead, dead_redis = (free_port() for _ in range(5))
    (work / "redis-password").write_text("unused\n")
    # The private route needs a verifier (a route nothing can authenticate to is an error).
    (work / "jwt-secret").write_text("check-chart-secret-nobody-signs-with-0123456789\n")
    upstream = subprocess.Popen([sys.executable, "-m", "http.server", str(upstream_port), "--bind", "127.0.0.1"],
                                cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = work / "routes.yaml"
    text = f"""
listeners: {{ public: {{ address: "127.0.0.1:{public}" }}, admin: {{ address: "127.0.0.1:{admin}" }} }}
authentication:
  jwt: {{ issuer: i, audiences: [a], keys: [{{ kid: k, algorithm: HS256, secret_file: "{work / 'jwt-secret'}" }}] }}
upstreams:
  live: {{ targets: ["127.0.0.1:{upstream_port}"], health_check: {{ type: tcp, interval: 10s }} }}
  dead: {{ targets: ["127.0.0.1:{dead}"], health_check: {{ type: tcp, interval: 10s, unhealthy_threshold: 5 }} }}
routes:
  - {{ name: live, match: {{ path: /live }}, upstream: live, public: true }}
  - {{ name: dead, match: {{ path: /dead }}, upstream: dead, public: true }}
  - {{ name: private, match: {{ path: /private }}, upstream: live }}
  - {{ name: limited, match: {{ path: /limited }}, upstream: live, public: true, rate_limits: [tight] }}
rate_limiting:
  # A Redis that is not there: store errors, the fallback, blocks and a bot signal.
  redis: {{ url: "redis://127.0.0.1:{dead_redis}", password_file: "{work / 'redis-password'}", readiness: reported }}
  policies:
    tight: {{ limit: 1, window: 60s, key: [client], block: {{ after: 1, duration: 60s }}, bot_after: 1 }}
"""
    config.write_text(text)
    usher = subprocess.Popen([USHER, "run", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base, admin_base = f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}"
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(admin_base + "/health/startup", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        for path in ["/live/", "/dead", "/dead", "/private", "/nope"] + ["/limited"] * 5:
            try:
                urllib.request.urlopen(base + path, timeout=5)
            except urllib.error.HTTPError:
                pass
        config.write_text(text + "\n")  # a reload
        time.sleep(1.0)
        usher.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        scraped = urllib.request.urlopen(admin_base + "/metrics", timeout=5).read().decode()

        def traffic():
            for _ in range(5):
                try:
                    urllib.request.urlopen(base + "/live/", timeout=5).read()
                except urllib.error.HTTPError:
                    pass  # the upstream's own 404 for a directory it does not have

        return scraped, prometheus_answers(admin, work, queries, traffic)
    finally:
        for process in (usher, upstream):
            process.kill()
            process.wait()


def panels(dashboard):
    """Every panel of a Grafana dashboard, rows' panels included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panels(panel)


def main():
    check_release(None, "default values")
    production = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text())
    manifests, objects = check_release(production, "production values")
    for kind in ["HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "PrometheusRule"]:
        one(objects, kind)
    check((CHART / "files" / "routes.yaml").read_text() == (ROOT / "routes.yaml").read_text(),
          "helm/usher/files/routes.yaml differs from routes.yaml: copy it over")
    shipped = sorted(p.name for p in (ROOT / "schemas").glob("*.json"))
    charted = sorted(p.name for p in (CHART / "files" / "schemas").glob("*.json"))
    check(shipped == charted and all((CHART / "files" / "schemas" / n).read_text() == (ROOT / "schemas" / n).read_text() for n in shipped),
          "helm/usher/files/schemas differs from schemas/: copy them over")
    policy = one(objects, "NetworkPolicy")
    admin_rules = [r for r in policy["spec"]["ingress"] if any(p["port"] == 9090 for p in r["ports"])]
    check(admin_rules and all("from" in r for r in admin_rules), "the admin port is open to everyone")
    rules = yaml.safe_dump(one(objects, "PrometheusRule")["spec"])
    dashboard = json.loads(one(objects, "ConfigMap", "-dashboard")["data"]["usher.json"])
    named = metric_families(rules) | metric_families(json.dumps(dashboard))
    panel_queries = [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]
    alert_rules = [rule for group in yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())["groups"]
                   for rule in group["rules"]]
    scraped, answers = exported_families(panel_queries + [rule["expr"] for rule in alert_rules])
    # Every dashboard panel's query and every alert's expression, evaluated by Prometheus
    # itself over what it scraped: each parses, and each panel shows data (the scenario
    # touches every family the panels draw).
    for expr, answer in answers.items():
        check(answer.get("status") == "success", f"Prometheus refused {expr!r}: {answer.get('error')}")
    empty = [expr for expr in panel_queries if not answers[expr]["data"]["result"]]
    check(not empty, f"dashboard queries with no data after traffic: {empty}")
    exported = {line.split()[2] for line in scraped.splitlines() if line.startswith("# TYPE ")}
    missing = sorted(named - exported)
    check(not missing, f"metrics named by alerts or the dashboard but not exported: {missing}")
    # Prometheus' own tools: the live /metrics after traffic lints clean, and the alerts
    # parse and fire (or stay silent) as their tests say.
    lint = subprocess.run(["promtool", "check", "metrics"], input=scraped, capture_output=True, text=True)
    check(lint.returncode == 0, f"promtool check metrics: {lint.stdout}{lint.stderr}")
    alerts = CHART / "files" / "alerts.yaml"
    for command in (["promtool", "check", "rules", str(alerts)],
                    ["promtool", "test", "rules", str(ROOT / "helm" / "tests" / "alerts_test.yaml")]):
        result = subprocess.run(command, capture_output=True, text=True)
        check(result.returncode == 0, f"{' '.join(command[:3])}: {result.stdout}{result.stderr}")
    print(f"chart ok: lint --strict clean, rendered with 2 values files and valid for Kubernetes "
          f"{KUBERNETES_VERSIONS[0]} to {KUBERNETES_VERSIONS[-1]}, {len(named)} metrics checked against "
          f"/metrics, which promtool lints clean; the alerts pass promtool check and test rules; "
          f"a Prometheus server evaluated {len(panel_queries)} panel queries (all with data) and "
          f"{len(alert_rules)} alert expressions")


if __name__ == "__main__":
    main()
