#!/usr/bin/env bash
# Stops the local ClickHouse server that ensure.sh started.
set -euo pipefail
data_dir=${1:-${IOCHUB_DATA_DIR:-.data}}
pid_file="$data_dir/clickhouse/clickhouse.pid"
if [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
	pid=$(cat "$pid_file")
	kill "$pid"
	for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
	kill -9 "$pid" 2>/dev/null || true
fi
