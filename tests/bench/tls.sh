#!/usr/bin/env bash
# HTML over TLS (a benchmark, not a test): tagwarden terminating TLS vs nginx
# terminating TLS with sub_filter, the same certificate, one worker each, in
# front of the same nginx origin serving a ~140 KB corpus page. HTTP/1.1 with
# wrk, HTTP/2 with h2load. Prints requests/s, latency and the ratios.
#
#   tests/bench/tls.sh      # needs: nginx, wrk, h2load, openssl
#                           # (apt-get install -y nginx-light wrk nghttp2-client openssl)
#   DURATION=20 CONNECTIONS=32 STREAMS=8 tests/bench/tls.sh
#
# Only 127.0.0.1 is targeted; every run is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
STREAMS=${STREAMS:-4}
PAGE=${PAGE:-../shared/corpus/pages/liberation-1.html}
for tool in nginx wrk h2load openssl; do
  command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install -y nginx-light wrk nghttp2-client openssl"; exit 1; }
done

cargo build --release --quiet
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/root" "$work/logs"
cp "$PAGE" "$work/root/page.html"
chmod -R a+rX "$work"
O=18580 A=18581 C=18583 ADMIN=18589

# One self-signed certificate for both servers (ECDSA P-256, as an ACME CA would issue).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=clinic.example \
  -addext subjectAltName=DNS:clinic.example -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
chmod a+r "$work/key.pem"

origin_conf "$work" "$O" "text/html html;"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
error_log $work/logs/error.log warn;
pid $work/logs/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000;
  upstream origin { server 127.0.0.1:$O; keepalive 64; }
  server { listen 127.0.0.1:$C ssl http2;
    ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem; ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Accept-Encoding ""; sub_filter_once off;
      sub_filter 'googletagmanager.com' 'blocked.invalid'; sub_filter 'google-analytics.com' 'blocked.invalid';
      sub_filter 'connect.facebook.net' 'blocked.invalid'; sub_filter 'doubleclick.net' 'blocked.invalid'; } }
}
CONF
cat > "$work/tagwarden.toml" <<CONF
[listen]
address = "127.0.0.1:$((A + 10))"
tls_address = "127.0.0.1:$A"
[admin]
address = "127.0.0.1:$ADMIN"
[upstream]
url = "http://127.0.0.1:$O"
[tls]
[[tls.certificates]]
cert_file = "$work/cert.pem"
key_file = "$work/key.pem"
CONF
nginx -p "$work" -c "$work/origin.conf" -g 'daemon off;' & pids+=($!)
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
TAGWARDEN_THREADS=1 RUST_LOG=warn ./target/release/tagwarden serve --config "$work/tagwarden.toml" \
  >"$work/logs/tagwarden.log" 2>&1 & pids+=($!)
for port in $A $C; do
  for _ in $(seq 50); do curl -skf -o /dev/null "https://127.0.0.1:$port/page.html" && break; sleep 0.1; done
done
for port in $A $C; do
  curl -sk --http2 -o /dev/null -w "port $port: %{http_code} HTTP/%{http_version} %{size_download} bytes\n" "https://127.0.0.1:$port/page.html"
done

h1() { # name port -> line on stderr, req/s on stdout
  local out rps p50 p99
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "https://127.0.0.1:$2/page.html")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-28s %10s req/s   p50 %8s   p99 %8s\n' "$1" "$rps" "$p50" "$p99" >&2
  echo "$rps"
}
h2() { # name port -> line on stderr, req/s on stdout
  local out rps mean
  out=$(h2load -t1 -c"$CONNECTIONS" -m"$STREAMS" -D"$DURATION" "https://127.0.0.1:$2/page.html" 2>&1)
  grep -q "succeeded" <<<"$out" || { echo "$out" >&2; exit 1; }
  rps=$(awk '/^finished in/ {print $4}' <<<"$out")
  mean=$(awk '/^time for request:/ {print $6}' <<<"$out")
  printf '%-28s %10s req/s   mean %8s   (%s)\n' "$1" "$rps" "$mean" "$(grep -o '[0-9]* succeeded, [0-9]* failed' <<<"$out")" >&2
  echo "$rps"
}
echo "one worker each, page $(basename "$PAGE") ($(wc -c <"$PAGE") bytes); h1: wrk -c$CONNECTIONS; h2: h2load -c$CONNECTIONS -m$STREAMS; ${DURATION}s" >&2
a1=$(h1 "tagwarden TLS h1" $A)
c1=$(h1 "nginx TLS sub_filter h1" $C)
a2=$(h2 "tagwarden TLS h2" $A)
c2=$(h2 "nginx TLS sub_filter h2" $C)
awk -v a="$a1" -v c="$c1" 'BEGIN { printf "h1 over TLS: tagwarden/nginx sub_filter = %.2f\n", a/c }'
awk -v a="$a2" -v c="$c2" 'BEGIN { printf "h2 over TLS: tagwarden/nginx sub_filter = %.2f\n", a/c }'
