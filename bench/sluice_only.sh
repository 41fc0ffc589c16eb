#!/usr/bin/env bash
#
# sluice_only.sh: the workloads only sluice has (issue 7), plus memory at many connections.
#
#   scan-miss   a distinct small HTML page per request (no-store, new URL), scanned with the
#               shipped rules and model: the miss path with a real scan every time
#   page-miss   a distinct ~100 KiB cacheable HTML page per request (new URL; prose with
#               nginx's $request_id spliced in): what a crawler mostly does, a miss that is
#               scanned over the model's whole 128 KiB window and written to the store
#   image-miss  distinct 512x512 JPEGs (no-store), each decoded and PDQ-hashed
#   hit-1k-c1000  one cached 1 KiB object over 1,000 keep-alive connections; reports the
#               proxy's peak RSS (VmHWM) against the configured memory tier
#   hit-distinct  hits on --pages distinct cached HTML pages (each its own body and verdict,
#               fetched once first), Zipf(1.0) popularity: more bodies than the memo keeps
#               in memory
#
# Same method as ../shared/bench/peers.sh: an nginx origin and wrk on one CPU, sluice pinned
# to the other with TOKIO_WORKER_THREADS=1. Needs nginx and wrk (Debian packages) and
# target/release/sluice. Everything listens on 127.0.0.1; state lives in a mktemp dir.
#
#   bench/sluice_only.sh [--duration 5s] [--images 4000] [--pages 50000]

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PATH=$PATH:/usr/sbin:/sbin
DURATION=5s
IMAGES=4000
PAGES=50000
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
while [[ $# -gt 0 ]]; do
    case $1 in
        --duration) DURATION=$2; shift 2 ;;
        --images) IMAGES=$2; shift 2 ;;
        --pages) PAGES=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
source bench/common.sh
require nginx wrk
bench_workdir sluice-only
OPORT=$(free_port); PPORT=$(free_port); APORT=$(free_port)

echo "generating $IMAGES JPEGs..." >&2
cargo run -q --release --example bench_images -- "$WORK/www/img" "$IMAGES"
head -c 1024 /dev/urandom > "$WORK/www/obj-1k"
# page-miss's page: ~100 KiB of paragraphs over a small vocabulary (the same on every run),
# with markers the origin replaces by each response's $request_id.
python3 - "$WORK/www/page-100k.html" <<'PY'
import random, sys
words = ("the of and to in is that for it as was with be by on not this are or from at which "
         "have an they were their one all we can has there been if more when will would who "
         "about people other into only some these two may first like now such very many new "
         "years also most made after way state well even back much where good could through "
         "work life over between take part each long still own might know world both see "
         "under great while public house little during early number program course general "
         "area water point small form order city case give group problem report market").split()
rng, paras, size = random.Random(7), [], 0
while size < 100 * 1024:
    p = " ".join(rng.choice(words) for _ in range(rng.randint(40, 120))).capitalize() + "."
    if rng.random() < 0.2:
        p += " Reference @@ID@@."
    paras.append("<p>" + p + "</p>")
    size += len(paras[-1]) + 1
page = ("<!doctype html><html><head><title>Report @@ID@@</title></head><body>"
        "<h1>Annual report @@ID@@</h1>\n" + "\n".join(paras) + "\n</body></html>\n")
open(sys.argv[1], "w").write(page)
PY
origin_conf "$OPORT" '        location / { add_header Cache-Control "max-age=3600" always; }
        location /img/ { add_header Cache-Control "no-store" always; default_type image/jpeg; }
        location /bigpage/ {
            rewrite ^ /page-100k.html break;
            sub_filter "@@ID@@" "$request_id";
            sub_filter_once off;
            add_header Cache-Control "max-age=3600" always;
        }
        location /page/ {
            default_type "text/html; charset=utf-8";
            add_header Cache-Control "max-age=3600" always;
            return 200 "<!doctype html><html><head><title>Archive $uri</title></head><body><h1>From the archive</h1><p>Page $uri of the archive. The reading group meets on Thursday to discuss caching proxies and the HTTP semantics of Vary.</p></body></html>";
        }
'"$SCAN_LOCATION"
taskset -c "$LOAD_CPU" nginx -c "$WORK/origin.conf" -p "$WORK/origin" >/dev/null 2>&1 &
PIDS+=($!)
sluice_toml "$PPORT" "$APORT"
TOKIO_WORKER_THREADS=1 taskset -c "$PROXY_CPU" target/release/sluice serve --config "$WORK/sluice.toml" \
    > "$WORK/sluice.log" 2>&1 &
SPID=$!
PIDS+=($SPID)
for _ in $(seq 100); do
    curl -sf -o /dev/null -x "http://127.0.0.1:$PPORT" "http://127.0.0.1:$OPORT/obj-1k" && break
    sleep 0.1
done

cpu() { awk '{print $14+$15}' "/proc/$SPID/stat"; }
run() { # name connections path mode [n]
    local name=$1 conns=$2; shift 2
    local c0 c1 out req
    c0=$(cpu)
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"$DURATION" -s bench/sluice_only.lua \
        "http://127.0.0.1:$PPORT" -- "127.0.0.1:$OPORT" "$@" | grep RESULT)
    c1=$(cpu)
    req=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$out")
    local dur; dur=$(sed 's/.*duration_us=\([0-9]*\).*/\1/' <<<"$out")
    printf '| %s | %d | %s | %s | %s | %s | %s | %s MiB |\n' "$name" "$conns" \
        "$(( req * 1000000 / dur ))" \
        "$(sed 's/.*p50_us=\([0-9]*\).*/\1/' <<<"$out")" \
        "$(sed 's/.*p99_us=\([0-9]*\).*/\1/' <<<"$out")" \
        "$(awk -v c="$((c1 - c0))" -v r="$req" 'BEGIN { printf "%.1f", c * 10000 / (r ? r : 1) }')" \
        "$(sed 's/.*non2xx=\([0-9]*\) errors=\([0-9]*\).*/\1\/\2/' <<<"$out")" \
        "$(awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$SPID/status")"
}

echo "| workload | conns | req/s | p50 µs | p99 µs | sluice CPU µs/req | non-2xx/errors | peak RSS |"
echo "|---|---:|---:|---:|---:|---:|---|---:|"
run scan-miss 50 /scan/ unique
run image-miss 50 /img/ cycle "$IMAGES"
run hit-1k-c1000 1000 /obj-1k static
echo "fetching $PAGES pages once..." >&2
taskset -c "$LOAD_CPU" curl -s --no-progress-meter --parallel --parallel-max 50 -x "http://127.0.0.1:$PPORT" \
    "http://127.0.0.1:$OPORT/page/[1-$PAGES]" >/dev/null
run hit-distinct 50 /page/ zipf "$PAGES"
# Last: peak RSS is the process's high-water mark, and this one stores ~100 KiB per request.
run page-miss 50 /bigpage/ unique
echo
echo "verdicts: $(grep -c 'verdict=clean' "$WORK/sluice.log" || true) clean access-log lines;" \
    "scans: $(curl -s "http://127.0.0.1:$APORT/metrics" | awk '/^sluice_scans_total/ { s += $2 } END { print s }')" >&2
