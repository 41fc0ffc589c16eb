#!/usr/bin/env bash
#
# callgrind.sh: user-space instructions per request, counted by valgrind's callgrind, for a
# 1 KiB cache hit, a 1 KiB pass-through (no-store) request and a scan-miss (a distinct
# 592-byte no-store HTML page per request, scanned with the shipped rules and model).
#
# On the shared development VM a wrk run moves by 5-20 % between runs, so a change worth a
# few percent cannot be seen in req/s; an instruction count is the same on every run (to
# within ~0.1 %). It counts user space only (the kernel's share, about half of a request,
# is not in it) and valgrind lacks the SHA-NI instructions, so the body's SHA-256 runs in
# software and is ~40 % of a pass request here against ~5 % of its user time on the machine.
# Compare counts between builds, not against wall time.
#
# An nginx origin serves /obj-1k (max-age=3600), /nostore/* (no-store) and /scan/* (no-store
# HTML, the page of bench/sluice_only.sh); sluice runs under
# callgrind with one worker thread; a small client sends N requests on each of 10
# keep-alive connections. The counters are zeroed after a warm-up and dumped after the run.
# Needs nginx, valgrind, python3 and curl (Debian packages) and target/release/sluice
# (SLUICE_BIN=PATH measures another binary that takes `serve --config FILE`, such as
# target/release/examples/bare_pass).
# Everything listens on 127.0.0.1; state lives in a mktemp dir.
#
#   bench/callgrind.sh [--requests N] [--top K] [--only hit|pass|scan]
#
# N requests per connection (default 200); --top K lists sluice's K costliest functions
# (inclusive instructions over the whole run); --only measures one workload.
# CALLGRIND_KEEP=DIR copies each dump to DIR/NAME.out for callgrind_annotate or kcachegrind.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PATH=$PATH:/usr/sbin:/sbin
N=200
TOP=0
ONLY=
while [[ $# -gt 0 ]]; do
    case $1 in
        --requests) N=$2; shift 2 ;;
        --top) TOP=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
source bench/common.sh
require nginx valgrind callgrind_control callgrind_annotate python3 curl
bench_workdir sluice-callgrind
OPORT=$(free_port); PPORT=$(free_port); APORT=$(free_port)

head -c 1024 /dev/urandom > "$WORK/www/obj-1k"
origin_conf "$OPORT" '        location / { add_header Cache-Control "max-age=3600" always; }
        location /nostore/ { rewrite ^ /obj-1k break; add_header Cache-Control "no-store" always; }
'"$SCAN_LOCATION"
nginx -c "$WORK/origin.conf" -p "$WORK/origin" >/dev/null 2>&1 &
PIDS+=($!)

# N keep-alive GETs on each of 10 connections, absolute-form; PATH gets a counter appended
# when UNIQUE is set. Exits non-zero on any status other than 200.
cat > "$WORK/client.py" <<'PY'
import socket, sys
port, origin, path, n, unique = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
pending = [b""] * len(conns)
def response(i):
    buf = pending[i]
    while b"\r\n\r\n" not in buf:
        buf += conns[i].recv(65536)
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, value = line.split(b":", 1)
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += conns[i].recv(65536)
    pending[i] = rest[length:]
    return head.split(b"\r\n")[0]
seq = 0
for _ in range(n):
    for c in conns:
        seq += 1
        url = "http://%s%s%s" % (origin, path, seq if unique else "")
        c.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: callgrind\r\nAccept: */*\r\n\r\n" % (url, origin)).encode())
    for i in range(len(conns)):
        status = response(i)
        if b" 200 " not in status:
            sys.exit("unexpected status: %r" % status)
PY

measure() { # name path unique
    local name=$1 path=$2 unique=$3
    [[ -z $ONLY || $ONLY == "$name" ]] || return 0
    rm -rf "$WORK/store"
    sluice_toml "$PPORT" "$APORT"
    RUST_LOG=info,access=off TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind \
        --callgrind-out-file="$WORK/$name.out" "${SLUICE_BIN:-target/release/sluice}" serve \
        --config "$WORK/sluice.toml" > "$WORK/$name.log" 2>&1 &
    local vpid=$!
    PIDS+=($vpid)
    # Under valgrind a cold start (the model and rules loaded in software) takes minutes.
    local up=
    for _ in $(seq 3000); do
        curl -sf -o /dev/null -x "http://127.0.0.1:$PPORT" "http://127.0.0.1:$OPORT/obj-1k" && { up=1; break; }
        kill -0 "$vpid" 2>/dev/null || break
        sleep 0.2
    done
    [[ -n $up ]] || { echo "$name: sluice did not answer; its log:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
    python3 "$WORK/client.py" "$PPORT" "127.0.0.1:$OPORT" "$path" 20 "$unique"
    callgrind_control -z "$vpid" >/dev/null 2>&1
    python3 "$WORK/client.py" "$PPORT" "127.0.0.1:$OPORT" "$path" "$N" "$unique"
    callgrind_control -d "$vpid" >/dev/null 2>&1
    # The dump is written asynchronously: wait for it before stopping valgrind.
    local dump=
    for _ in $(seq 100); do
        dump=$(ls -t "$WORK/$name.out".* 2>/dev/null | sed -n 1p || true)
        [[ -n $dump ]] && break
        sleep 0.1
    done
    kill "$vpid"; wait "$vpid" 2>/dev/null || true
    [[ -n $dump ]] || { echo "$name: callgrind wrote no dump (see $WORK/$name.log)" >&2; exit 1; }
    [[ -z ${CALLGRIND_KEEP:-} ]] || cp "$dump" "$CALLGRIND_KEEP/$name.out"
    local total; total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ && !n { gsub(",", "", $1); print $1; n = 1 }')
    printf '%-5s %8d instructions per request (%d requests)\n' "$name" $((total / (N * 10))) $((N * 10))
    if [[ $TOP -gt 0 ]]; then
        callgrind_annotate --inclusive=yes "$dump" 2>/dev/null \
            | grep -E '^ *[0-9,]+ \(' | grep -F "$PWD/src/" | grep -v '{{closure}}$' \
            | sed "s|$PWD/||" | sed -n "1,${TOP}p" | sed 's/^/      /'
    fi
}

measure hit /obj-1k 0
measure pass /nostore/ 1
measure scan /scan/ 1
