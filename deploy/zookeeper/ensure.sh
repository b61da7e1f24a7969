#!/usr/bin/env bash
# Ensures ZooKeeper is installed for the replicated-ClickHouse tests: Debian's
# `zookeeper` package (the server and its scripts, without zookeeperd's
# system service), installed when missing (as root). The tests start their
# own ZooKeeper on loopback with its data in a temporary directory
# (pkg/chstore/chstoretest); ClickHouse 18.16 coordinates replicas with it.
# Current ClickHouse releases use ClickHouse Keeper instead (k8s/, compose).
set -euo pipefail

say() { echo "zookeeper: $*" >&2; }

if [ -x /usr/share/zookeeper/bin/zkServer.sh ] && command -v java >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	say "ZooKeeper is not installed. Install it with:"
	say "  sudo apt-get update && sudo apt-get install -y zookeeper"
	exit 1
fi
say "installing Debian's zookeeper"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends zookeeper >/dev/null
say "installed"
