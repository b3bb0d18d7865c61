#!/usr/bin/env bash
# Starts a local cluster from the TOML files in cluster-configs/local-3, local-5 or local-3-tls.
# Usage: cluster-configs/run.sh [local-3|local-5|local-3-tls]   (Ctrl-C stops every replica)
# local-3-tls writes its certificates first (taskraft tls init data/local-3-tls/tls) unless
# they exist; clients then need --ca-file data/local-3-tls/tls/ca.pem.
# Data goes to ./data/<cluster>/node-N relative to the current directory; logs next to it.
set -euo pipefail
cluster=${1:-local-3}
here=$(cd "$(dirname "$0")" && pwd)
bin=${TASKRAFT_BIN:-$(command -v taskraft || echo "$here/../target/release/taskraft")}
[ -x "$bin" ] || { echo "taskraft binary not found: build it with 'cargo build --release' or set TASKRAFT_BIN" >&2; exit 1; }
[ -d "$here/$cluster" ] || { echo "unknown cluster '$cluster' (local-3, local-5 or local-3-tls)" >&2; exit 1; }
mkdir -p "data/$cluster"
if [ "$cluster" = local-3-tls ] && [ ! -e "data/$cluster/tls/ca.pem" ]; then
  "$bin" tls init "data/$cluster/tls"
fi
pids=()
stop() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait; }
trap stop INT TERM EXIT
for cfg in "$here/$cluster"/node-*.toml; do
  name=$(basename "$cfg" .toml)
  "$bin" server --config "$cfg" >>"data/$cluster/$name.log" 2>&1 &
  pids+=($!)
  echo "started $name (pid $!), log data/$cluster/$name.log"
done
echo "waiting for the cluster (taskraft cluster status)…"
wait
