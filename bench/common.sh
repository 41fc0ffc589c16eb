# Shared by the bench scripts (sourced, not run): a scratch directory removed at exit with the
# daemons started into PIDS, free loopback ports, and the nginx origin and sluice configs.

# require TOOL...: exits unless each tool is on PATH and sluice's release build exists.
require() {
    local tool
    for tool; do
        command -v "$tool" >/dev/null || { echo "$tool not found (a Debian package)" >&2; exit 1; }
    done
    [[ -x target/release/sluice ]] || { echo "build first: cargo build --release" >&2; exit 1; }
}

# The scan-miss page: a distinct ~600-byte no-store HTML page per request (nginx's
# $request_id), for origin_conf. Shared so that bench/sluice_only.sh and bench/callgrind.sh
# measure the same body.
SCAN_LOCATION='        location /scan/ {
            default_type "text/html; charset=utf-8";
            add_header Cache-Control "no-store" always;
            return 200 "<!doctype html><html><head><title>Weekly digest $request_id</title></head><body><h1>This week at the workshop</h1><p>Issue $request_id. Our reading group meets on Thursday to discuss caching proxies, request smuggling and the HTTP semantics of Vary. Bring questions; coffee is on us.</p><p>Read more at <a href=\"https://example.org/digest/$request_id\">the archive</a> or reply to this mail to unsubscribe.</p><ul><li>Release notes for 2.4</li><li>Conference travel grants</li><li>Office hours moved to 3pm</li></ul></body></html>";
        }'

# bench_workdir NAME: sets WORK (a fresh mktemp dir) and PIDS; kills PIDS and removes WORK at
# exit (KEEP=1 keeps WORK for inspection).
bench_workdir() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    chmod 755 "$WORK"   # nginx's workers run as an unprivileged user and must read www/
    mkdir -p "$WORK/www" "$WORK/origin/tmp"
    PIDS=()
    trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [[ -n ${KEEP:-} ]] || rm -rf "$WORK"' EXIT
}

# free_port: a loopback port nothing listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# origin_conf PORT LOCATIONS: writes $WORK/origin.conf, one nginx worker serving $WORK/www on
# 127.0.0.1:PORT with the given location blocks.
origin_conf() {
    cat > "$WORK/origin.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/origin/nginx.pid;
error_log $WORK/origin/error.log warn;
events { worker_connections 8192; }
http {
    default_type application/octet-stream;
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/origin/tmp;
    proxy_temp_path $WORK/origin/tmp;
    fastcgi_temp_path $WORK/origin/tmp;
    uwsgi_temp_path $WORK/origin/tmp;
    scgi_temp_path $WORK/origin/tmp;
    server {
        listen 127.0.0.1:$1 backlog=4096;
        root $WORK/www;
$2
    }
}
CONF
}

# sluice_toml PROXY_PORT ADMIN_PORT: writes $WORK/sluice.toml (store in $WORK/store, loopback
# origins allowed).
sluice_toml() {
    cat > "$WORK/sluice.toml" <<CONF
[proxy]
listen = "127.0.0.1:$1"
[admin]
listen = "127.0.0.1:$2"
[store]
path = "$WORK/store"
[upstream]
allow = ["127.0.0.0/8"]
CONF
}
