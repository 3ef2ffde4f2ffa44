#!/usr/bin/env bash
# bench/run.sh — issue 6's side-by-side benchmark. Starts a fake upstream
# (1 KiB JSON, and a JSON token endpoint that counts its calls), a tuned bare
# ReverseProxy (bench/baseline), nginx with one worker and authsidecar, all on
# loopback; measures them with wrk and hey, targets interleaved, RUNS times;
# and writes bench/RESULTS.md. Issue 16's three-route sidecar ("routes":
# tezpay on its own port, juspay and alt under /juspay and /alt, the
# measured route being alt, the prefix looked up last) joins the throughput
# runs only, beside the single-route one. Run from anywhere: bash bench/run.sh
#
#   RUNS=3          repetitions of every measurement (medians are reported)
#   CPU_RUNS=5      repetitions of the CPU-per-request measurement, the noisiest
#   PROXY_ENV=      extra environment for the baseline and the sidecar only,
#                   e.g. PROXY_ENV=GOMAXPROCS=1 (the load generators keep theirs)
#   DURATION=10s    length of each wrk/hey run
#   GOBENCH=1       also run the proxy's Go benchmarks (0: skip)
#   TOKEN_DELAY=250ms  how long the token endpoint takes (so that the cold
#                   start's 1024 connections arrive while the fetch is in flight)
#   STRICT=0        1: exit 1 when a target is missed
#   KEEP_RAW=0      1: keep the raw tool outputs (their directory is printed)
#   OUT=bench/RESULTS.md
set -euo pipefail

RUNS=${RUNS:-3}
CPU_RUNS=${CPU_RUNS:-5}
PROXY_ENV=${PROXY_ENV:-}
DURATION=${DURATION:-10s}
GOBENCH=${GOBENCH:-1}
TOKEN_DELAY=${TOKEN_DELAY:-250ms}
STRICT=${STRICT:-0}
KEEP_RAW=${KEEP_RAW:-0}
OUT=${OUT:-bench/RESULTS.md}
GO=${GO:-go}
TOKEN=static-benchmark-token # the static token of the baseline and nginx
REQ_PATH='/v1/status?id=1'

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS=0

# --- tools -------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v hey >/dev/null || missing+=(hey)
command -v curl >/dev/null || missing+=(curl)
[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || missing+=(nginx)
if ((${#missing[@]})); then
	echo "== installing ${missing[*]}"
	sudo=()
	((EUID == 0)) || sudo=(sudo)
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

tmp=$(mktemp -d /tmp/authsidecar-bench.XXXXXX)
mkdir -p "$tmp"/{bin,logs,nginx,tput,lat,cpu,rss}
pids=()
cleanup() {
	local rc=$? pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ $KEEP_RAW == 1 || $rc != 0 ]]; then echo "raw outputs and logs: $tmp"; else rm -rf "$tmp"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers -----------------------------------------------------------------
used=" "
# free_port sets REPLY to a free loopback port, below the ephemeral range.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 10000))
		[[ $used == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			used+="$p "
			REPLY=$p
			return
		fi
	done
}

# start NAME CMD... runs CMD in the background, logging to logs/NAME.log; the
# pid is in REPLY.
start() {
	local name=$1
	shift
	"$@" >"$tmp/logs/$name.log" 2>&1 &
	REPLY=$!
	pids+=("$REPLY")
}

# wait_port PORT NAME waits up to 5 s for PORT to accept connections.
wait_port() {
	local i
	for ((i = 0; i < 500; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.01
	done
	echo "$2 did not listen on port $1:" >&2
	tail -20 "$tmp/logs/$2.log" >&2
	exit 1
}

# cpu_ticks PID prints the process's utime+stime, in clock ticks.
cpu_ticks() {
	local stat f
	stat=$(<"/proc/$1/stat")
	read -r -a f <<<"${stat##*) }" # fields 3… of proc(5); utime is 14, stime 15
	echo $((f[11] + f[12]))
}

# hwm_kb PID prints the process's peak resident set size, in KiB.
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# sidecar NAME PORT ADMIN_PORT starts authsidecar against the fake upstream.
sidecar() {
	# shellcheck disable=SC2086 # PROXY_ENV is a list of NAME=value words
	start "$1" env $PROXY_ENV AUTHSIDECAR_UPSTREAM_URL="http://127.0.0.1:$up_port" \
		AUTHSIDECAR_TOKEN_SOURCE=json AUTHSIDECAR_TOKEN_URL="http://127.0.0.1:$up_port/token" \
		AUTHSIDECAR_CLIENT_ID=bench AUTHSIDECAR_CLIENT_SECRET=bench-secret \
		AUTHSIDECAR_LISTEN_ADDR="127.0.0.1:$2" AUTHSIDECAR_ADMIN_ADDR="127.0.0.1:$3" \
		AUTHSIDECAR_LOG_LEVEL=warn bin/authsidecar
}

# routes NAME PORT TEZPAY_PORT ADMIN_PORT starts authsidecar with three routes
# against the fake upstream: tezpay on TEZPAY_PORT, juspay and alt under
# /juspay and /alt on PORT. Each fetches its own token, from /token/routes
# (not counted with the single-route sidecar's /token).
routes() {
	local r env=()
	for r in TEZPAY JUSPAY ALT; do
		env+=("AUTHSIDECAR_ROUTE_${r}_UPSTREAM_URL=http://127.0.0.1:$up_port" "AUTHSIDECAR_ROUTE_${r}_TOKEN_SOURCE=json"
			"AUTHSIDECAR_ROUTE_${r}_TOKEN_URL=http://127.0.0.1:$up_port/token/routes"
			"AUTHSIDECAR_ROUTE_${r}_CLIENT_ID=bench" "AUTHSIDECAR_ROUTE_${r}_CLIENT_SECRET=bench-secret")
	done
	# shellcheck disable=SC2086 # PROXY_ENV is a list of NAME=value words
	start "$1" env $PROXY_ENV AUTHSIDECAR_ROUTES=tezpay,juspay,alt "${env[@]}" \
		AUTHSIDECAR_ROUTE_TEZPAY_LISTEN_ADDR="127.0.0.1:$3" \
		AUTHSIDECAR_ROUTE_JUSPAY_PATH_PREFIX=/juspay AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX=/alt \
		AUTHSIDECAR_LISTEN_ADDR="127.0.0.1:$2" AUTHSIDECAR_ADMIN_ADDR="127.0.0.1:$4" \
		AUTHSIDECAR_LOG_LEVEL=warn bin/authsidecar
}

token_calls() { curl -fsS "http://127.0.0.1:$up_port/token-calls"; }

# rotate N prints the targets given after N, rotated left by N.
rotate() {
	local n=$1
	shift
	local a=("$@")
	n=$((n % ${#a[@]}))
	echo "${a[@]:n}" "${a[@]:0:n}"
}

# --- build ---------------------------------------------------------------------
echo "== build"
CGO_ENABLED=0 "$GO" build -trimpath -o bin/authsidecar ./cmd/authsidecar
for p in upstream baseline report; do
	CGO_ENABLED=0 "$GO" build -trimpath -o "$tmp/bin/$p" "./bench/$p"
done

if [[ $GOBENCH == 1 ]]; then
	echo "== go test -bench (in-memory transport)"
	"$GO" test -run '^$' -bench 'BareReverseProxy|Sidecar' -benchmem -count 3 ./proxy/ | tee "$tmp/gobench.txt" | grep '^Benchmark'
	"$GO" test -run '^$' -bench 'PrefixRouter' -benchmem -count 3 ./cmd/authsidecar/ | tee -a "$tmp/gobench.txt" | grep '^Benchmark'
fi

# --- start the targets -------------------------------------------------------------
free_port && up_port=$REPLY
free_port && base_port=$REPLY
free_port && nginx_port=$REPLY
free_port && side_port=$REPLY
free_port && admin_port=$REPLY
free_port && routes_port=$REPLY
free_port && routes_tezpay_port=$REPLY
free_port && routes_admin_port=$REPLY

start upstream "$tmp/bin/upstream" -addr "127.0.0.1:$up_port" -token-delay "$TOKEN_DELAY"
wait_port "$up_port" upstream
# shellcheck disable=SC2086 # PROXY_ENV is a list of NAME=value words
start baseline env $PROXY_ENV "$tmp/bin/baseline" -addr "127.0.0.1:$base_port" -upstream "http://127.0.0.1:$up_port"
base_pid=$REPLY

cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/logs/nginx.error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    upstream app {
        server 127.0.0.1:$up_port;
        keepalive 1024;
        keepalive_requests 10000000;
        keepalive_timeout 120s;
    }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer $TOKEN";
        }
    }
}
EOF
"$NGINX" -t -q -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/logs/nginx.error.log"
start nginx "$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/logs/nginx.error.log"
nginx_pid=$REPLY

sidecar sidecar "$side_port" "$admin_port"
side_pid=$REPLY
routes routes "$routes_port" "$routes_tezpay_port" "$routes_admin_port"
for p in "$base_port:baseline" "$nginx_port:nginx" "$side_port:sidecar" "$admin_port:sidecar" \
	"$routes_port:routes" "$routes_tezpay_port:routes" "$routes_admin_port:routes"; do
	wait_port "${p%%:*}" "${p#*:}"
done
for a in "$admin_port" "$routes_admin_port"; do
	for ((i = 0; i < 100; i++)); do
		curl -fs -o /dev/null "http://127.0.0.1:$a/readyz" && break
		sleep 0.1
	done
done

declare -A url pid
url[direct]="http://127.0.0.1:$up_port$REQ_PATH"
url[nginx]="http://127.0.0.1:$nginx_port$REQ_PATH"
url[baseline]="http://127.0.0.1:$base_port$REQ_PATH"
url[sidecar]="http://127.0.0.1:$side_port$REQ_PATH"
url[routes]="http://127.0.0.1:$routes_port/alt$REQ_PATH"
pid=([nginx]=$nginx_pid [baseline]=$base_pid [sidecar]=$side_pid)

# Sanity: each target answers the 1 KiB body, and the proxies put a token on.
for t in direct nginx baseline sidecar routes; do
	n=$(curl -fsS "${url[$t]}" | wc -c)
	auth=$(curl -fsS "${url[$t]%%/v1/*}/echo-auth")
	echo "   $t: $n bytes, upstream saw Authorization: ${auth:0:20}…"
	[[ $n == 1024 ]] || { echo "$t: body of $n bytes, want 1024" >&2 && exit 1; }
	case $t in
	direct) [[ -z $auth ]] ;;
	sidecar | routes) [[ $auth == "Bearer eyJ"* ]] ;;
	*) [[ $auth == "Bearer $TOKEN" ]] ;;
	esac || { echo "$t: upstream saw Authorization: $auth" >&2 && exit 1; }
done

# --- measurements ----------------------------------------------------------------
# CPU and RSS first, on fresh processes, so that VmHWM is the peak at 1000 req/s.
for ((r = 1; r <= CPU_RUNS; r++)); do
	for t in $(rotate "$r" baseline nginx sidecar); do
		echo "== cpu  run $r/$CPU_RUNS $t"
		before=$(cpu_ticks "${pid[$t]}")
		hey -z "$DURATION" -c 10 -q 100 "${url[$t]}" >"$tmp/cpu/$t.$r.txt"
		echo "$before $(cpu_ticks "${pid[$t]}")" >"$tmp/cpu/$t.$r.ticks"
	done
done
declare -A hwm
for t in nginx baseline sidecar; do hwm[$t]=$(hwm_kb "${pid[$t]}"); done

for ((r = 1; r <= RUNS; r++)); do
	for t in $(rotate "$r" direct nginx baseline sidecar); do
		echo "== lat  run $r/$RUNS $t"
		wrk -t1 -c8 -d"$DURATION" --latency "${url[$t]}" >"$tmp/lat/$t.$r.txt"
	done
done
for ((r = 1; r <= RUNS; r++)); do
	for t in $(rotate "$r" direct nginx baseline sidecar routes); do
		echo "== tput run $r/$RUNS $t"
		wrk -t1 -c128 -d"$DURATION" "${url[$t]}" >"$tmp/tput/$t.$r.txt"
	done
done
for t in nginx baseline sidecar; do echo "${hwm[$t]} $(hwm_kb "${pid[$t]}")" >"$tmp/rss/$t"; done
echo "whole_run $(token_calls)" >"$tmp/tokens"

# Cold start: a fresh sidecar, 1024 connections the moment its port accepts.
echo "== cold start"
free_port && cold_port=$REPLY
free_port && cold_admin=$REPLY
calls=$(token_calls)
sidecar cold "$cold_port" "$cold_admin"
cold_pid=$REPLY
until (exec 3<>"/dev/tcp/127.0.0.1/$cold_port") 2>/dev/null; do
	kill -0 "$cold_pid" 2>/dev/null || { tail "$tmp/logs/cold.log" >&2 && exit 1; }
done
hey -n 1024 -c 1024 "http://127.0.0.1:$cold_port$REQ_PATH" >"$tmp/cold.txt"
echo "cold_start $(($(token_calls) - calls))" >>"$tmp/tokens"
kill "$cold_pid"

# --- report ------------------------------------------------------------------------
{
	printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'CPUs (nproc)\t%s\n' "$(nproc)"
	printf 'CPU model\t%s\n' "$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	printf 'kernel\t%s\n' "$(uname -sr)"
	printf 'Go\t%s\n' "$("$GO" version)"
	printf 'nginx\t%s\n' "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
	printf 'wrk\t%s\n' "$(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo unknown)"
	printf 'hey\t%s\n' "$(dpkg-query -W -f='${Version}' hey 2>/dev/null || echo unknown)"
	printf 'authsidecar\t%s\n' "$(git describe --always --dirty 2>/dev/null || echo unknown)"
	printf 'runs × duration\t%s × %s (CPU per request: %s runs; targets interleaved, order rotated each run)\n' "$RUNS" "$DURATION" "$CPU_RUNS"
	printf 'extra environment of the baseline and the sidecar\t%s\n' "${PROXY_ENV:-none}"
	printf 'GOMAXPROCS / GOGC / GOMEMLIMIT\t%s / %s / %s\n' "${GOMAXPROCS:-default}" "${GOGC:-default}" "${GOMEMLIMIT:-default}"
	printf 'token endpoint delay\t%s\n' "$TOKEN_DELAY"
	printf 'wall time of the run\t%d s\n' "$SECONDS"
} >"$tmp/meta.tsv"
# shellcheck disable=SC2016 # the heredoc expands $PROXY_ENV inside the quotes
cat >"$tmp/commands.txt" <<EOF
RUNS=$RUNS CPU_RUNS=$CPU_RUNS DURATION=$DURATION${PROXY_ENV:+ PROXY_ENV='$PROXY_ENV'} bash bench/run.sh

# all on 127.0.0.1, every process sharing the machine's $(nproc) CPUs; each target gets
#   GET $REQ_PATH, answered by bench/upstream with 1 KiB of JSON
# direct:   bench/upstream
# nginx:    one worker (master_process off), proxy_pass to a keepalive pool, proxy_set_header Authorization "Bearer …"
# baseline: bench/baseline (httputil.ReverseProxy, Rewrite+SetURL, static header, proxy.NewTransport, sync.Pool BufferPool)
# sidecar:  AUTHSIDECAR_TOKEN_SOURCE=json AUTHSIDECAR_TOKEN_URL=http://127.0.0.1:PORT/token AUTHSIDECAR_LOG_LEVEL=warn … bin/authsidecar
# routes:   AUTHSIDECAR_ROUTES=tezpay,juspay,alt, each json as above (own port, /juspay, /alt); GET /alt$REQ_PATH (throughput only)
CGO_ENABLED=0 go build -trimpath -o bin/authsidecar ./cmd/authsidecar
hey -z $DURATION -c 10 -q 100 URL        # CPU per request and RSS: nginx, baseline, sidecar (this phase first)
wrk -t1 -c8 -d$DURATION --latency URL    # p50/p99: every target
wrk -t1 -c128 -d$DURATION URL            # throughput: every target, routes included
hey -n 1024 -c 1024 URL                  # cold start of a fresh sidecar
go test -run '^\$' -bench 'BareReverseProxy|Sidecar' -benchmem -count 3 ./proxy/
go test -run '^\$' -bench 'PrefixRouter' -benchmem -count 3 ./cmd/authsidecar/
EOF
strict=()
[[ $STRICT == 1 ]] && strict=(-strict)
echo "== report"
"$tmp/bin/report" -dir "$tmp" -out "$OUT" -clk-tck "$(getconf CLK_TCK)" "${strict[@]}"
