#!/usr/bin/env bash
# Checks of the operations artefacts that need tools (no Docker engine needed):
#
#   - promtool (Debian's `prometheus` package, installed when missing): the Prometheus config,
#     the alert rules, their unit tests, and every PromQL query of the Grafana dashboard;
#   - python3 + PyYAML (pip-installed when missing): docker-compose.yml parses, everything it
#     builds from or mounts exists, Prometheus scrapes exactly the compose workers, Grafana's
#     data source and dashboard paths match the mounts, the dashboard JSON is sound, and the
#     Dockerfile copies only existing files;
#   - `docker compose config` (or docker-compose v1) when installed: the compose schema;
#   - cargo: the Dockerfile's build stage builds (scripts/check-dockerfile.py runs its
#     `cargo build` in a folder holding only what its COPY lines name; compiles the workspace's
#     own crates in release, a few minutes).
#
# tests/ops_artifacts.rs (cargo test) checks that the metric names used are the worker's.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"

step() { printf '\n==> %s\n' "$*"; }

# ---- tools ----------------------------------------------------------------------------------
if ! command -v promtool >/dev/null 2>&1; then
  step "installing promtool (Debian package prometheus)"
  $sudo_cmd apt-get update -qq
  # policy-rc.d usually keeps the packaged service from starting in containers; we only need
  # the promtool binary.
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus
fi
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
  step "installing PyYAML"
  python3 -m pip install --quiet pyyaml || python3 -m pip install --quiet --user pyyaml
fi

# ---- Prometheus -----------------------------------------------------------------------------
step "promtool $(promtool --version 2>&1 | head -n 1 | awk '{print $3}')"
step "promtool check config ops/prometheus/prometheus.yml"
promtool check config ops/prometheus/prometheus.yml
step "promtool check rules ops/prometheus/alerts.yml"
promtool check rules ops/prometheus/alerts.yml
step "promtool test rules ops/prometheus/alerts_test.yml"
promtool test rules ops/prometheus/alerts_test.yml

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

step "dashboard queries parse as PromQL (as recording rules, Grafana variables substituted)"
python3 - "$tmp/dashboard_rules.yml" <<'PY'
import json, sys
dashboard = json.load(open("ops/grafana/dashboards/credit-risk.json"))
rules = []
for panel in dashboard["panels"]:
    for target in panel.get("targets", []):
        expr = target.get("expr", "")
        for variable, value in (("$__rate_interval", "1m"), ("$__interval", "1m"),
                                ("$__range", "1h"), ("$instance", ".*")):
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unknown Grafana variable in {panel['title']!r}: {expr}"
        rules.append({"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": expr})
with open(sys.argv[1], "w") as out:
    json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, out)  # JSON is YAML
print(f"{len(rules)} queries")
PY
promtool check rules "$tmp/dashboard_rules.yml"

# ---- compose, Grafana, Dockerfile -----------------------------------------------------------
step "docker-compose.yml, Grafana provisioning, dashboard JSON, Dockerfile"
python3 - <<'PY'
import json, os, re, sys
import yaml

errors = []
def check(condition, message):
    if not condition:
        errors.append(message)

compose = yaml.safe_load(open("docker-compose.yml"))
services = compose["services"]
for name in ("kafka", "kafka-init", "worker-1", "worker-2", "loadgen", "prometheus", "grafana"):
    check(name in services, f"compose: service {name} missing")

# Everything built from or bind-mounted exists.
host_paths = []
for name, service in services.items():
    build = service.get("build")
    if build is not None:
        context = build if isinstance(build, str) else build.get("context", ".")
        host_paths.append((name, context))
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        host_paths.append((name, os.path.join(context, dockerfile)))
    for volume in service.get("volumes", []):
        source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
        if source.startswith((".", "/")):
            host_paths.append((name, source))
        else:
            check(source in (compose.get("volumes") or {}), f"compose: {name}: undeclared volume {source}")
    for env_file in service.get("env_file", []) if isinstance(service.get("env_file"), list) else []:
        host_paths.append((name, env_file))
for name, path in host_paths:
    check(os.path.exists(path), f"compose: {name} refers to {path}, which does not exist")
print(f"compose: {len(services)} services, {len(host_paths)} host paths exist")

# Compose interpolation: a `$` not meant for compose must be `$$`.
raw = open("docker-compose.yml").read()
for match in re.finditer(r"(?<!\$)\$(?!\$)(\{?)([A-Za-z_][A-Za-z0-9_]*)", raw):
    check(match.group(1) == "{" and match.group(2) in ("LOADGEN_RATE", "LOADGEN_INVALID_EVERY", "GRAFANA_ADMIN_PASSWORD"),
          f"compose: unexpected interpolation ${match.group(1)}{match.group(2)} (use $$ for a literal $)")

# The workers and what scrapes them.
workers = sorted(n for n, s in services.items()
                 if "CREDIT_RISK__METRICS__ADDRESS" in (s.get("environment") or {}))
check(workers == ["worker-1", "worker-2"], f"compose: workers {workers}")
prometheus = yaml.safe_load(open("ops/prometheus/prometheus.yml"))
job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "credit-risk-worker")
targets = sorted(t for c in job["static_configs"] for t in c["targets"])
check(targets == [f"{w}:9464" for w in workers], f"prometheus: targets {targets} vs workers {workers}")
check(prometheus["global"]["scrape_interval"] == "5s", "prometheus: scrape_interval is not 5s")
check(prometheus["rule_files"] == ["alerts.yml"], "prometheus: rule_files")
prom_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
check(prom_mounts.get("/etc/prometheus") == "./ops/prometheus", "compose: ops/prometheus not at /etc/prometheus")
check("--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"].get("command", []),
      "compose: prometheus --config.file")

# Grafana: data source, dashboard provider, mounts.
graf = services["grafana"]
mounts = {v.split(":")[1]: v.split(":")[0] for v in graf["volumes"]}
check(mounts.get("/etc/grafana/provisioning") == "./ops/grafana/provisioning", "grafana: provisioning mount")
datasources = yaml.safe_load(open("ops/grafana/provisioning/datasources/prometheus.yml"))["datasources"]
uids = {d["uid"] for d in datasources}
check(uids == {"prometheus"}, f"grafana: data source uids {uids}")
for d in datasources:
    host = re.match(r"https?://([^:/]+)", d["url"]).group(1)
    check(host in services, f"grafana: data source host {host} is no compose service")
providers = yaml.safe_load(open("ops/grafana/provisioning/dashboards/dashboards.yml"))["providers"]
for p in providers:
    path = p["options"]["path"]
    check(mounts.get(path) == "./ops/grafana/dashboards", f"grafana: provider path {path} is not the dashboards mount")
env = graf.get("environment") or {}
check(str(env.get("GF_AUTH_ANONYMOUS_ENABLED")).lower() == "true", "grafana: anonymous access off")
check(env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer", "grafana: anonymous role is not Viewer")
home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
if home:
    directory, file = os.path.split(home)
    check(directory in mounts and os.path.exists(os.path.join(mounts[directory], file)),
          f"grafana: home dashboard {home} is not mounted")

# The dashboard.
dashboard = json.load(open("ops/grafana/dashboards/credit-risk.json"))
check(36 <= dashboard.get("schemaVersion", 0) <= 41, "dashboard: schemaVersion")
ids = [p["id"] for p in dashboard["panels"]]
check(len(ids) == len(set(ids)), "dashboard: duplicate panel ids")
for p in dashboard["panels"]:
    check(p["type"] in ("timeseries", "stat", "table"), f"dashboard: {p['title']}: type {p['type']}")
    check(p.get("datasource", {}).get("uid") in uids, f"dashboard: {p['title']}: data source")
    for t in p.get("targets", []):
        check(t.get("datasource", {}).get("uid") in uids, f"dashboard: {p['title']}: target data source")
print(f"dashboard: {len(ids)} panels")

# The loadgen command (the `produce` subcommand of the worker binary).
command = services["loadgen"].get("command", [])
check(command[:1] == ["produce"] and "--brokers" in command and "--topic" in command,
      f"loadgen: command {command}")

# Dockerfile: COPY/ADD sources exist (stage copies excepted).
copies = 0
for line in open("Dockerfile"):
    words = line.split()
    if not words or words[0] not in ("COPY", "ADD") or any(w.startswith("--from") for w in words):
        continue
    args = [w for w in words[1:] if not w.startswith("--")]
    for source in args[:-1]:
        copies += 1
        check(os.path.exists(source), f"Dockerfile: COPY {source}, which does not exist")
print(f"Dockerfile: {copies} COPY sources exist")

if errors:
    print("\n".join("FAIL " + e for e in errors), file=sys.stderr)
    sys.exit(1)
print("OK")
PY

# ---- compose schema (optional: needs the compose CLI, not the engine) -----------------------
if docker compose version >/dev/null 2>&1; then
  step "docker compose config"
  docker compose -f docker-compose.yml config --quiet && echo OK
elif command -v docker-compose >/dev/null 2>&1; then
  # Compose v1 predates the top-level `name:`; validate the rest against its schema.
  step "docker-compose (v1) config, without the top-level name:"
  grep -v '^name:' docker-compose.yml > "$tmp/docker-compose.yml"
  LOADGEN_RATE=200 docker-compose --project-directory "$root" -f "$tmp/docker-compose.yml" config --quiet && echo OK
else
  step "compose schema check skipped (neither \`docker compose\` nor docker-compose installed)"
fi

# ---- Dockerfile build stage (cargo, not the engine) -----------------------------------------
step "Dockerfile build stage: its cargo build with only its COPY sources (a few minutes)"
PATH="$HOME/.cargo/bin:$PATH" python3 scripts/check-dockerfile.py

step "all operations checks passed"
