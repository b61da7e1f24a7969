#!/usr/bin/env bash
# Ensures a local ClickHouse server for iochub: installs Debian's package when
# it is missing (as root), then starts a server on loopback with its data under
# the project's data directory, unless one already answers on the port.
#
#   deploy/clickhouse/ensure.sh [DATA_DIR]
#
# Environment: IOCHUB_CH_TCP_PORT (default 9000), IOCHUB_CH_HTTP_PORT (8123).
set -euo pipefail

data_dir=${1:-${IOCHUB_DATA_DIR:-.data}}
tcp_port=${IOCHUB_CH_TCP_PORT:-9000}
http_port=${IOCHUB_CH_HTTP_PORT:-8123}
ch_dir=$(mkdir -p "$data_dir/clickhouse" && cd "$data_dir/clickhouse" && pwd)

say() { echo "clickhouse: $*" >&2; }

ping() { clickhouse-client --host 127.0.0.1 --port "$tcp_port" --query 'SELECT 1' >/dev/null 2>&1; }

if ! command -v clickhouse-server >/dev/null 2>&1 || ! command -v clickhouse-client >/dev/null 2>&1; then
	if [ "$(id -u)" != 0 ]; then
		say "clickhouse-server is not installed. Install it with:"
		say "  sudo apt-get update && sudo apt-get install -y clickhouse-server clickhouse-client"
		exit 1
	fi
	say "installing Debian's clickhouse-server"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
fi

if ping; then
	say "already answering on 127.0.0.1:$tcp_port"
	exit 0
fi

mkdir -p "$ch_dir/data" "$ch_dir/tmp" "$ch_dir/user_files" "$ch_dir/format_schemas" "$ch_dir/log"
cat > "$ch_dir/config.xml" <<XML
<?xml version="1.0"?>
<!-- Written by deploy/clickhouse/ensure.sh: a local server for iochub, loopback only. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>$ch_dir/log/clickhouse-server.log</log>
        <errorlog>$ch_dir/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$tcp_port</tcp_port>
    <http_port>$http_port</http_port>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
    <mark_cache_size>1073741824</mark_cache_size>
    <path>$ch_dir/data/</path>
    <tmp_path>$ch_dir/tmp/</tmp_path>
    <user_files_path>$ch_dir/user_files/</user_files_path>
    <format_schema_path>$ch_dir/format_schemas/</format_schema_path>
    <users_config>$ch_dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
XML
cat > "$ch_dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML

run_as=()
if [ "$(id -u)" = 0 ] && id clickhouse >/dev/null 2>&1; then
	chown -R clickhouse:clickhouse "$ch_dir"
	run_as=(setpriv --reuid=clickhouse --regid=clickhouse --init-groups)
fi
say "starting on 127.0.0.1:$tcp_port, data in $ch_dir"
nohup "${run_as[@]}" clickhouse-server --config-file="$ch_dir/config.xml" \
	>"$ch_dir/log/stdout.log" 2>&1 </dev/null &
echo $! >"$ch_dir/clickhouse.pid" # setpriv execs the server: this is its pid
for _ in $(seq 1 120); do
	if ping; then
		say "ready"
		exit 0
	fi
	sleep 0.5
done
say "did not answer within 60 s; last lines of its log:"
tail -n 20 "$ch_dir/log/clickhouse-server.err.log" "$ch_dir/log/stdout.log" >&2 || true
exit 1
