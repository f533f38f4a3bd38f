#!/usr/bin/env bash
# The first-party vendor path under load (a benchmark, not a test): wrk against
#   (a) tagwarden serving a vendor's JavaScript through /_tw/zendesk/<host>/…
#       (TLS to the vendor, the vendor body rewriter on, gzip to the client if asked), and
#   (b) nginx as a plain reverse proxy of the same file from the same vendor,
# one worker thread/process each, the vendor being its own nginx process with TLS
# (a throwaway CA made here with openssl, trusted by both through their CA-file settings,
# and reached by tagwarden through `[vendors] resolve` — the configuration a user
# writes for a staging vendor). Prints requests/s, p50/p99 and the ratio (a)/(b).
#
#   tests/bench/vendor.sh         # needs: nginx, wrk, openssl (apt-get install -y nginx-light wrk)
#   DURATION=20 CONNECTIONS=32 GZIP=1 tests/bench/vendor.sh
#
# Only 127.0.0.1 is targeted; every run is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
command -v nginx >/dev/null || { echo "nginx not found: apt-get install -y nginx-light"; exit 1; }
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk"; exit 1; }

cargo build --release --quiet
work=$(mktemp -d)
pids=()
cleanup() { [ -n "${KEEP:-}" ] && return; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/root/web_widget" "$work/logs"
V=18580 A=18581 B=18582 ADMIN=18589 HOST=static.zdassets.com

# A ~300 KB vendor bundle with the vendor's own URLs sprinkled through it (what the
# body rewriter must find) and plenty of code that has none.
vendor_bundle 1500 "$HOST" > "$work/root/web_widget/web_widget.js"
chmod -R a+rX "$work"

vendor_pki "$work" "$HOST"

cat > "$work/vendor.conf" <<CONF
worker_processes 1;
error_log $work/logs/vendor-error.log warn;
pid $work/logs/vendor.pid;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; keepalive_requests 100000;
  types { application/javascript js; }
  server { listen 127.0.0.1:$V ssl; server_name $HOST; ssl_certificate $work/vendor.pem;
    ssl_certificate_key $work/vendor.key; root $work/root; }
}
CONF
cat > "$work/proxy.conf" <<CONF
worker_processes 1;
error_log $work/logs/proxy-error.log warn;
pid $work/logs/proxy.pid;
events { worker_connections 1024; }
http {
  access_log off; keepalive_requests 100000;
  upstream vendor { server 127.0.0.1:$V; keepalive 64; }
  server { listen 127.0.0.1:$B;
    location /_tw/zendesk/$HOST/ {
      proxy_pass https://vendor/; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host $HOST; proxy_ssl_server_name on; proxy_ssl_name $HOST;
      proxy_ssl_verify on; proxy_ssl_trusted_certificate $work/ca.pem; proxy_ssl_session_reuse on; } }
}
CONF
cat > "$work/tagwarden.toml" <<CONF
rules = "$PWD/rules"
[listen]
address = "127.0.0.1:$A"
[admin]
address = "127.0.0.1:$ADMIN"
[limits]
# One load generator on one address: the per-client vendor rate limit would answer 429.
vendor_requests_per_second = 0
[vendors]
resolve = { "$HOST" = "127.0.0.1:$V" }
ca_file = "$work/ca.pem"
CONF
nginx -p "$work" -c "$work/vendor.conf" -g 'daemon off;' & pids+=($!)
nginx -p "$work" -c "$work/proxy.conf" -g 'daemon off;' & pids+=($!)
TAGWARDEN_THREADS=1 RUST_LOG=warn ./target/release/tagwarden serve --config "$work/tagwarden.toml" \
  >"$work/logs/tagwarden.log" 2>&1 & pids+=($!)
P=/_tw/zendesk/$HOST/web_widget/web_widget.js
for port in $A $B; do
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port$P" && break; sleep 0.1; done
done
for port in $A $B; do curl -s -o /dev/null -w "port $port: %{http_code} %{size_download} bytes\n" "http://127.0.0.1:$port$P"; done
echo "vendor URLs pointed first-party by tagwarden: $(curl -s "http://127.0.0.1:$A$P" | grep -o "/_tw/zendesk/$HOST/" | wc -l) (of 1500)"

HDR=()
[ -n "${GZIP:-}" ] && HDR=(-H "Accept-Encoding: gzip")
run() { # name port -> prints a line on stderr, echoes req/s
  local out rps p50 p99
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${HDR[@]}" "http://127.0.0.1:$2$P")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-28s %10s req/s   p50 %8s   p99 %8s\n' "$1" "$rps" "$p50" "$p99" >&2
  echo "$rps"
}
echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s ${HDR[*]:-}, one worker each, vendor JS $(wc -c <"$work/root/web_widget/web_widget.js") bytes" >&2
a=$(run "tagwarden vendor path" $A)
b=$(run "nginx plain proxy" $B)
awk -v a="$a" -v b="$b" 'BEGIN { printf "vendor JS: tagwarden/nginx = %.2f (goal >= 0.9)\n", a/b }'
