# Shared by the bench scripts (sourced, not run): a scratch directory removed at exit with the
# daemons started into PIDS, free loopback ports, and the nginx origin and sluice configs.

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
