#!/usr/bin/env bash
# Soak test for sluice (not part of `cargo test`): mixed load through the proxy against a
# loopback origin with hostile endpoints, plus faults (kill -9 and restart, SIGHUP reloads,
# admin hash adds) for a bounded time; reports errors, a status histogram and peak RSS.
#
#   scripts/soak.sh [--duration 60] [--connections 32] [--binary PATH] [--keep]
#
# Needs bash, python3 (the origin) and curl; uses wrk when installed, else a curl loop.
# Builds target/release/sluice when it is missing (unless --binary is given). Everything
# listens on and talks to 127.0.0.1 only. Exit status: 0 when sluice never panicked, every
# restart became healthy and a normal request succeeds at the end; 1 otherwise.
set -euo pipefail

DURATION=60
CONNECTIONS=32
BINARY=""
KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --binary) BINARY="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "soak: unknown argument $1" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -z "$BINARY" ]]; then
    BINARY="$ROOT/target/release/sluice"
    if [[ ! -x "$BINARY" ]]; then
        echo "soak: building $BINARY" >&2
        (cd "$ROOT" && cargo build --release --bin sluice) >&2
    fi
fi
[[ -x "$BINARY" ]] || { echo "soak: no binary at $BINARY" >&2; exit 2; }

WORK="$(mktemp -d /tmp/sluice-soak.XXXXXX)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
    [[ -f "$WORK/sluice.pid" ]] && kill -9 "$(cat "$WORK/sluice.pid")" 2>/dev/null || true
    if [[ $KEEP -eq 0 ]]; then rm -rf "$WORK"; else echo "soak: kept $WORK" >&2; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
ORIGIN_PORT=$(free_port); PROXY_PORT=$(free_port); ADMIN_PORT=$(free_port)
ORIGIN="http://127.0.0.1:$ORIGIN_PORT"
ADMIN="http://127.0.0.1:$ADMIN_PORT"

# ---------------------------------------------------------------------------------------------
# The origin: cacheable and uncacheable pages, spam, and hostile endpoints.
cat > "$WORK/origin.py" <<'PY'
import http.server, socket, socketserver, struct, sys, time, zlib

def bomb(mib):  # gzip of `mib` MiB of zeros: ~1 KiB per MiB, a ratio over 1000
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * (1 << 20)
    return b"".join(z.compress(zeros) for _ in range(mib)) + z.flush()

BOMB = bomb(200)

def body(n, size):
    return (("object %d " % n) * (size // 10 + 1)).encode()[:size]

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass

    def send(self, status, headers, data):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        p = self.path.split("?")[0]
        parts = p.strip("/").split("/")
        kind, n = parts[0], int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        try:
            if kind == "ok":            # cacheable, 1-64 KiB
                self.send(200, [("Cache-Control", "max-age=30"), ("Content-Type", "text/plain")],
                          body(n, 1024 * (1 + n % 64)))
            elif kind == "nocache":
                self.send(200, [("Cache-Control", "no-store"), ("Content-Type", "text/html")],
                          b"<html><body><p>fresh %d</p></body></html>" % n)
            elif kind == "spam":
                self.send(200, [("Cache-Control", "max-age=30"), ("Content-Type", "text/plain")],
                          b"CONGRATULATIONS! You have WON the international lottery prize of "
                          b"$1,000,000. Send your bank details to claim your winnings now!")
            elif kind == "big":         # 4 MiB, cacheable
                self.send(200, [("Cache-Control", "max-age=30"), ("Content-Type", "application/octet-stream")],
                          body(n, 4 << 20))
            elif kind == "error":
                self.send(503, [("Content-Type", "text/plain")], b"origin overloaded")
            elif kind == "bomb":
                self.send(200, [("Content-Encoding", "gzip"), ("Content-Type", "text/plain"),
                                ("Cache-Control", "max-age=30")], BOMB)
            elif kind == "slowhead":    # head after 4 s: past upstream.response_timeout
                time.sleep(4)
                self.send(200, [], b"late")
            elif kind == "drip":        # 1 byte per 0.5 s of a 100-byte body
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                for _ in range(100):
                    self.wfile.write(b"x"); self.wfile.flush(); time.sleep(0.5)
            elif kind == "endless":     # chunked, never ends
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                chunk = b"z" * 65536
                while True:
                    self.wfile.write(b"10000\r\n" + chunk + b"\r\n")
            elif kind == "badframing":  # both lengths, conflicting
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                self.close_connection = True
            elif kind == "truncated":   # declares 1000, sends 10, closes
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n"
                                 b"Cache-Control: max-age=30\r\n\r\n0123456789")
                self.close_connection = True
            elif kind == "reset":       # RST without a response
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
            else:
                self.send(404, [], b"no such page")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY

# ---------------------------------------------------------------------------------------------
# sluice's configuration: short upstream timeouts so hostile endpoints end quickly.
mkdir -p "$WORK/hashes"
cp -r "$ROOT/rules" "$WORK/rules"
[[ -d "$ROOT/data/hashes" ]] && cp "$ROOT"/data/hashes/* "$WORK/hashes/" 2>/dev/null || true
cat > "$WORK/sluice.toml" <<TOML
[proxy]
listen = "127.0.0.1:$PROXY_PORT"
idle_timeout = "10s"
[upstream]
allow = ["127.0.0.0/8"]
response_timeout = "2s"
body_timeout = "3s"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[store]
path = "$WORK/store"
max_size = "64MiB"
memory = "16MiB"
[scan]
rules = "$WORK/rules"
models = "$ROOT/models"
hash_lists = "$WORK/hashes"
TOML

STARTS=0; SLOW_STARTS=0; PEAK_KB=0; RSS_SAMPLES=""
start_sluice() {
    local attempt t0
    for attempt in $(seq 50); do
        NO_COLOR=1 "$BINARY" serve --config "$WORK/sluice.toml" >>"$WORK/sluice.log" 2>&1 &
        echo $! > "$WORK/sluice.pid"
        disown   # no "Killed" job notices for the kill -9s
        STARTS=$((STARTS + 1))
        t0=$SECONDS
        until curl -fs -m 1 "$ADMIN/healthz" >/dev/null 2>&1; do
            if ! kill -0 "$(cat "$WORK/sluice.pid")" 2>/dev/null; then
                # A killed predecessor's threads may still hold the store lock for a moment.
                if tail -1 "$WORK/sluice.log" | grep -q "could not acquire lock"; then
                    sleep 0.1
                    continue 2
                fi
                echo "soak: sluice exited at start-up; log tail:" >&2
                tail -5 "$WORK/sluice.log" >&2
                return 1
            fi
            if (( SECONDS - t0 > 30 )); then SLOW_STARTS=$((SLOW_STARTS + 1)); return 1; fi
            sleep 0.1
        done
        return 0
    done
    return 1
}
sample_rss() {
    local pid; pid=$(cat "$WORK/sluice.pid" 2>/dev/null) || return 0
    local hwm rss
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [[ -n "$hwm" && "$hwm" -gt "$PEAK_KB" ]] && PEAK_KB=$hwm
    RSS_SAMPLES="$RSS_SAMPLES ${rss:-0}"
}

python3 "$WORK/origin.py" "$ORIGIN_PORT" 2>"$WORK/origin.log" &
PIDS+=($!)
until curl -fs -m 1 "$ORIGIN/ok/1" >/dev/null 2>&1; do sleep 0.1; done
start_sluice || { echo "soak: sluice did not start" >&2; exit 1; }
echo "soak: sluice $("$BINARY" --version 2>/dev/null | head -1) on 127.0.0.1:$PROXY_PORT, origin $ORIGIN, ${DURATION}s, $CONNECTIONS connections" >&2

# ---------------------------------------------------------------------------------------------
# Faults: kill -9 + restart every 20 s, SIGHUP every 7 s, an admin hash add every 3 s.
KILLS=0; HUPS=0; ADDS=0; ADD_FAIL=0
faults() {
    local t=0
    while (( t < DURATION )); do
        sleep 1; t=$((t + 1))
        sample_rss
        if (( t % 3 == 0 )); then
            local h; h=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
            if curl -fs -m 5 -X POST "$ADMIN/hashes" \
                -d "{\"kind\":\"sha256\",\"hash\":\"$h\",\"label\":\"soak\",\"list\":\"soak\"}" >/dev/null; then
                ADDS=$((ADDS + 1)); else ADD_FAIL=$((ADD_FAIL + 1)); fi
        fi
        if (( t % 7 == 0 )); then
            kill -HUP "$(cat "$WORK/sluice.pid")" 2>/dev/null && HUPS=$((HUPS + 1))
        fi
        if (( t % 20 == 0 && t < DURATION )); then
            local old; old=$(cat "$WORK/sluice.pid")
            kill -9 "$old" 2>/dev/null && KILLS=$((KILLS + 1))
            start_sluice || true
        fi
    done
    echo "$KILLS $HUPS $ADDS $ADD_FAIL $STARTS $SLOW_STARTS $PEAK_KB" > "$WORK/faults.out"
    echo "$RSS_SAMPLES" > "$WORK/rss.out"
}

# ---------------------------------------------------------------------------------------------
# Load: weighted mix of URLs through the proxy (absolute-form requests).
cat > "$WORK/mix.txt" <<MIX
60 $ORIGIN/ok/%d
12 $ORIGIN/nocache/%d
4 $ORIGIN/spam/1
2 $ORIGIN/big/%d
4 $ORIGIN/error/1
1 $ORIGIN/bomb/1
1 $ORIGIN/slowhead/1
1 $ORIGIN/drip/1
1 $ORIGIN/endless/1
2 $ORIGIN/badframing/1
2 $ORIGIN/truncated/1
2 $ORIGIN/reset/1
MIX

cat > "$WORK/mix.lua" <<'LUA'
local urls, weights, total = {}, {}, 0
for line in io.lines(os.getenv("SOAK_MIX")) do
  local w, u = line:match("^(%d+) (.+)$")
  total = total + tonumber(w); urls[#urls + 1] = u; weights[#weights + 1] = total
end
statuses = {}
threads = {}
function setup(thread) table.insert(threads, thread) end
function init() math.randomseed(os.time() + math.random(1, 100000)) end
function request()
  local r = math.random(1, total)
  for i = 1, #weights do
    if r <= weights[i] then
      return wrk.format("GET", string.format(urls[i], math.random(0, 499)))
    end
  end
end
function response(status) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do all[k] = (all[k] or 0) + v end
  end
  local f = io.open(os.getenv("SOAK_HIST"), "w")
  for k, v in pairs(all) do f:write(k, " ", v, "\n") end
  f:close()
  io.write(string.format("errors: connect %d, read %d, write %d, timeout %d, status>399 %d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status))
end
LUA

faults &
FAULTS_PID=$!
PIDS+=($FAULTS_PID)

if command -v wrk >/dev/null; then
    SOAK_MIX="$WORK/mix.txt" SOAK_HIST="$WORK/hist.out" \
        wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s "$WORK/mix.lua" \
        "http://127.0.0.1:$PROXY_PORT" > "$WORK/wrk.out" 2>&1 || true
else
    # curl fallback: CONNECTIONS parallel loops, one request at a time each.
    loop() {
        local end=$((SECONDS + DURATION))
        while (( SECONDS < end )); do
            local u; u=$(awk -v r=$RANDOM 'BEGIN{srand(r)} {w[NR]=$1; u[NR]=$2; t+=$1} END{x=int(rand()*t)+1; for(i=1;i<=NR;i++){x-=w[i]; if(x<=0){print u[i]; exit}}}' "$WORK/mix.txt")
            curl -s -o /dev/null -m 10 -w '%{http_code}\n' -x "http://127.0.0.1:$PROXY_PORT" \
                "$(printf "$u" $((RANDOM % 500)))" || true
        done
    }
    for _ in $(seq "$CONNECTIONS"); do loop >> "$WORK/codes.out" & done
    wait $(jobs -p | grep -v "^$FAULTS_PID$") 2>/dev/null || true
    sort "$WORK/codes.out" | uniq -c | awk '{print $2, $1}' > "$WORK/hist.out"
    echo "curl loop (wrk not installed)" > "$WORK/wrk.out"
fi
wait "$FAULTS_PID" || true

# ---------------------------------------------------------------------------------------------
# After the storm: a normal request must still succeed, and nothing may have panicked.
FINAL=$(curl -s -o /dev/null -m 10 -w '%{http_code}' -x "http://127.0.0.1:$PROXY_PORT" "$ORIGIN/ok/7" || echo 000)
read -r KILLS HUPS ADDS ADD_FAIL STARTS SLOW_STARTS PEAK_KB < "$WORK/faults.out"
sed -i 's/\x1b\[[0-9;]*m//g' "$WORK/sluice.log"
PANICS=$(grep -c "panicked" "$WORK/sluice.log" || true)
STORE_MSGS=$(grep -ciE "store (is )?damaged|moved it aside|cache store failed" "$WORK/sluice.log" || true)
WARNS=$(grep -c " WARN " "$WORK/sluice.log" || true)
ERRS=$(grep -c " ERROR " "$WORK/sluice.log" || true)
sample_rss

echo "== sluice soak: ${DURATION}s, $CONNECTIONS connections, binary $BINARY"
grep -E "Latency|requests in|Requests/sec|Socket errors|Non-2xx|errors:" "$WORK/wrk.out" || cat "$WORK/wrk.out"
echo "status histogram (status count):"
sort -n "$WORK/hist.out" | sed 's/^/  /'
echo "per endpoint, from sluice's access log (endpoint status complete: count, max duration):"
grep "access:" "$WORK/sluice.log" \
    | sed -nE 's/.*url=http:\/\/[^/]+\/([a-z]+)[^ ]* status=([0-9]+).*complete=([a-z]+) duration_ms=([0-9]+).*/\1 \2 \3 \4/p' \
    | awk '{k=sprintf("%-10s %s %-14s", $1, $2, "complete=" $3); n[k]++; if ($4 > m[k]) m[k] = $4}
           END {for (k in n) printf "  %s %6d  max %6d ms\n", k, n[k], m[k]}' | sort
echo "faults: $KILLS kill -9 + restart, $HUPS SIGHUP reloads, $ADDS admin hash adds ($ADD_FAIL failed)"
echo "starts: $STARTS, incl. retries while a killed predecessor held the store lock (slow or failed: $SLOW_STARTS)"
echo "peak RSS (VmHWM, max over all sluice processes): $((PEAK_KB / 1024)) MiB; VmRSS samples (KiB):$(cat "$WORK/rss.out" | tr ' ' '\n' | awk 'NF' | sort -n | awk '{a[NR]=$1} END{if(NR) printf " min %d, median %d, max %d", a[1], a[int((NR+1)/2)], a[NR]}')"
echo "log: $ERRS ERROR, $WARNS WARN lines; store messages: $STORE_MSGS; panics: $PANICS"
grep " WARN \| ERROR " "$WORK/sluice.log" | sed -E 's/^[^ ]+ +//' \
    | cut -c1-110 | sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -8 | sed 's/^/  /'
echo "final normal request: $FINAL"
[[ "$PANICS" -eq 0 && "$SLOW_STARTS" -eq 0 && "$FINAL" == "200" ]]
