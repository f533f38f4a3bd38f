# Shared pieces of the loopback benchmarks (tests/bench/*.sh) and the soak
# (tests/load/soak.sh); sourced, not run. Each function writes into the
# caller's work directory and starts nothing.

# origin_conf WORK PORT TYPES: an nginx origin (one worker) serving WORK/root on
# 127.0.0.1:PORT, config at WORK/origin.conf; TYPES is its `types { … }` body.
origin_conf() {
  cat > "$1/origin.conf" <<CONF
worker_processes 1;
error_log $1/logs/origin-error.log warn;
pid $1/logs/origin.pid;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; keepalive_requests 100000;
  types { $3 }
  server { listen 127.0.0.1:$2; root $1/root; }
}
CONF
}

# vendor_bundle COUNT HOST > FILE: a vendor script with COUNT functions, each
# naming one of the vendor's own URLs (what the vendor body rewriter must find).
vendor_bundle() {
  for i in $(seq 1 "$1"); do
    echo "function f$i(a){return a.map(function(x){return x*$i+'chunk-$i'}).join(',')}var u$i='https://$2/web_widget/latest/c$i.js';"
  done
}

# vendor_pki WORK HOST: a throwaway CA (WORK/ca.pem) and a P-256 leaf for HOST
# signed by it (WORK/vendor.pem, WORK/vendor.key).
vendor_pki() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=bench CA" \
    -keyout "$1/ca.key" -out "$1/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
    -keyout "$1/vendor.key" -out "$1/vendor.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\n' "$2" > "$1/ext.cnf"
  openssl x509 -req -in "$1/vendor.csr" -CA "$1/ca.pem" -CAkey "$1/ca.key" -CAcreateserial -days 1 \
    -extfile "$1/ext.cnf" -out "$1/vendor.pem" 2>/dev/null
}
