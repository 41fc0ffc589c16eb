#!/usr/bin/env bash
#
# cpu_per_request.sh: a proxy's own CPU time per request, user and system apart.
#
# peers.sh gives req/s, which mixes the proxy's cost with the load generator's and the
# origin's (they share a CPU and are often the bottleneck). This script runs one proxy
# pinned to CPU 1, with the nginx origin and wrk on CPU 0 (the same configs and wrk script
# as peers.sh), and reads the proxy's utime/stime from /proc before and after the measured
# run. Divided by wrk's request count, that is what each request cost the proxy, and
# user time is what a proxy's code can change: the kernel's share is the same for any
# proxy that makes the same system calls.
#
#   bench/cpu_per_request.sh sluice [BIN] [WORKLOAD] [SECONDS]   # BIN: target/release/sluice
#   bench/cpu_per_request.sh nginx        [WORKLOAD] [SECONDS]   # nginx's proxy_cache config
#
# WORKLOAD: pass-1k (default), hit-1k or hit-100k. Prints one line:
#   SYSTEM WORKLOAD req/s=N user_us=N sys_us=N
# With SYSCALLS=1 it prints the proxy's system calls per request instead (perf tracepoints);
# with EVENTS=LIST, those perf events per request (e.g. EVENTS=context-switches,page-faults;
# this VM has no hardware counters, so no cycles or instructions). With PROFILE=FILE it also
# samples the proxy with `perf record -e cpu-clock` into FILE for `perf report -i FILE`.
# Run it two or three times, alternating systems: single runs on a shared VM vary by 10 %.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEERS=$HERE/../../shared/bench
[[ -d $PEERS ]] || PEERS=$HERE/../shared/bench
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

SYSTEM=${1:?usage: cpu_per_request.sh sluice|nginx [BIN] [WORKLOAD] [SECONDS]}
shift
BIN=target/release/sluice
if [[ $SYSTEM == sluice && ${1:-} == */* ]]; then BIN=$1; shift; fi
WORKLOAD=${1:-pass-1k}
SECONDS_RUN=${2:-5}

source "$HERE/common.sh"
bench_workdir sluice-cpu
render() {  # render TEMPLATE NAME PORT: peers.sh's config templates, filled in
    sed -e "s|@WORK@|$WORK|g" -e "s|@NAME@|$2|g" -e "s|@PORT@|$3|g" \
        -e "s|@ADMIN_PORT@|${ADMIN_PORT:-0}|g" -e "s|@ORIGIN@|127.0.0.1:$ORIGIN_PORT|g" "$1"
}
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

mkdir -p "$WORK/proxy/tmp"
head -c 1024 /dev/urandom | base64 -w 0 | head -c 1024 >"$WORK/www/obj-1k"
head -c 102400 /dev/urandom >"$WORK/www/obj-100k"

ORIGIN_PORT=$(free_port)
render "$PEERS/conf/origin-nginx.conf" origin "$ORIGIN_PORT" >"$WORK/origin.conf"
taskset -c 0 nginx -c "$WORK/origin.conf" -p "$WORK/origin" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$ORIGIN_PORT"

PORT=$(free_port)
case $SYSTEM in
    sluice)
        ADMIN_PORT=$(free_port)
        render "$PEERS/conf/sluice.toml" proxy "$PORT" >"$WORK/sluice.toml"
        RUST_LOG=${RUST_LOG:-info,access=off} TOKIO_WORKER_THREADS=1 \
            taskset -c 1 "$BIN" serve --config "$WORK/sluice.toml" >"$WORK/proxy.log" 2>&1 &
        PIDS+=($!) ;;
    nginx)
        render "$PEERS/conf/nginx-proxy.conf" proxy "$PORT" >"$WORK/proxy.conf"
        taskset -c 1 nginx -c "$WORK/proxy.conf" -p "$WORK/proxy" >/dev/null 2>&1 &
        PIDS+=($!) ;;
    *) echo "unknown system $SYSTEM" >&2; exit 2 ;;
esac
PROXY_PID=$!
wait_port "$PORT"

case $WORKLOAD in
    pass-1k) ARGS=(/nostore/ unique 1) ;;
    hit-1k) ARGS=(/obj-1k) ;;
    hit-100k) ARGS=(/obj-100k) ;;
    *) echo "unknown workload $WORKLOAD" >&2; exit 2 ;;
esac
drive() { taskset -c 0 wrk -t1 -c50 -d"$1s" --timeout 5s -s "$PEERS/lua/bench.lua" \
    "http://127.0.0.1:$PORT" -- absolute "127.0.0.1:$ORIGIN_PORT" "${ARGS[@]}"; }

# nginx's master forks a worker: measure the worker (the one process serving).
if [[ $SYSTEM == nginx ]]; then
    sleep 0.5
    PROXY_PID=$(pgrep -P "$PROXY_PID" | head -1)
fi
ticks() { awk '{print $14, $15}' "/proc/$PROXY_PID/stat"; }

drive 2 >/dev/null
if [[ -n ${SYSCALLS:-} || -n ${EVENTS:-} ]]; then
    # System calls per request instead of CPU, counted by perf's syscall tracepoints (cheap
    # enough that the proxy runs at nearly full speed, unlike under strace).
    ev=$(printf 'syscalls:sys_enter_%s,' writev write sendto sendmsg recvfrom read readv \
        epoll_wait epoll_ctl openat newfstatat pread64 close getsockopt setsockopt futex)
    [[ -z ${EVENTS:-} ]] || ev=$EVENTS,
    perf stat -x, -e "${ev%,}" -p "$PROXY_PID" -o "$WORK/perf.txt" &
    PERF=$!
    sleep 0.5
    out=$(drive "$SECONDS_RUN")
    kill -INT "$PERF"; wait "$PERF" || true
    requests=$(sed -n 's/^RESULT requests=\([0-9]*\).*/\1/p' <<<"$out")
    awk -F, -v n="$requests" -v sys="$SYSTEM" '$1 ~ /^[0-9.]+$/ && $3 != "" && $1 / n >= 0.005 {
        sub(/.*sys_enter_/, "", $3); printf "%s %-16s %.3f per request\n", sys, $3, $1 / n }' "$WORK/perf.txt"
    exit 0
fi
if [[ -n ${PROFILE:-} ]]; then
    perf record -q -e cpu-clock -F 4999 -g -p "$PROXY_PID" -o "$PROFILE" 2>/dev/null &
    PERF=$!
    sleep 0.5
fi
read -r u0 s0 < <(ticks)
out=$(drive "$SECONDS_RUN")
read -r u1 s1 < <(ticks)
[[ -z ${PROFILE:-} ]] || { kill -INT "$PERF"; wait "$PERF" || true; }
requests=$(sed -n 's/^RESULT requests=\([0-9]*\).*/\1/p' <<<"$out")
hz=$(getconf CLK_TCK)
awk -v n="$requests" -v d="$SECONDS_RUN" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$hz" \
    -v sys="$SYSTEM" -v wl="$WORKLOAD" 'BEGIN {
        printf "%s %s req/s=%d user_us=%.2f sys_us=%.2f\n", sys, wl, n / d, u / hz * 1e6 / n, s / hz * 1e6 / n }'
