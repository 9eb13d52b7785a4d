# tests/system/lib/testca.sh - a throwaway CA and a server certificate for
# 127.0.0.1, made at test time with GnuTLS's certtool (sourced, not a test).
#
#   make_test_ca DIR    DIR/ca.pem (trust anchor for curl --cacert and agents),
#                       DIR/ca.key, DIR/server.pem (127.0.0.1, localhost),
#                       DIR/server.key
make_test_ca() {
    local d=$1
    mkdir -p "$d"
    command -v certtool >/dev/null || { echo "FAIL: certtool (gnutls-bin) not installed" >&2; return 1; }
    certtool --generate-privkey --key-type=ecdsa --outfile "$d/ca.key" 2>/dev/null
    cat >"$d/ca.tmpl" <<'T'
cn = "kiln test CA"
ca
cert_signing_key
expiration_days = 2
T
    certtool --generate-self-signed --load-privkey "$d/ca.key" --template "$d/ca.tmpl" \
        --outfile "$d/ca.pem" 2>/dev/null
    certtool --generate-privkey --key-type=ecdsa --outfile "$d/server.key" 2>/dev/null
    cat >"$d/server.tmpl" <<'T'
cn = "127.0.0.1"
ip_address = "127.0.0.1"
dns_name = "localhost"
tls_www_server
signing_key
encryption_key
expiration_days = 2
T
    certtool --generate-certificate --load-privkey "$d/server.key" --load-ca-certificate "$d/ca.pem" \
        --load-ca-privkey "$d/ca.key" --template "$d/server.tmpl" --outfile "$d/server.pem" 2>/dev/null
    chmod 600 "$d/ca.key" "$d/server.key"
    [ -s "$d/server.pem" ] && [ -s "$d/ca.pem" ]
}
