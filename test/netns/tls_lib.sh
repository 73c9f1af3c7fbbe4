# shellcheck shell=bash
# Identities for the TLS tests (sourced after lib.sh, after tb_setup): per-CPE keys and a
# peers file, and a small certificate authority made with the openssl CLI in $TB_DIR
# (docs/CONFIG.md "auth"). Nothing here touches the system's OpenSSL configuration: every
# openssl command gets its own config file.
#
#   tls_require_openssl          exit 4 (skip) without the openssl CLI
#   tls_psk ID                   $TB_DIR/ID.psk: a fresh 32-byte key (64 hex digits, 0600)
#   tls_peers FILE ID...         FILE (0600): "ID HEXKEY" for each ID, from $TB_DIR/ID.psk
#   tls_psk_auth ID              the CPE's auth value for ID (for TB_CPE_AUTH)
#   tls_ca CA                    a CA in $TB_DIR/CA/ (ca.pem, ca.key, crl.pem: empty CRL)
#   tls_cert CA NAME cpe|conc [START END]
#                                $TB_DIR/NAME.pem + NAME.key signed by CA: EKU clientAuth
#                                (cpe) or serverAuth (conc), subjectAltName DNS:NAME;
#                                START/END (YYYYMMDDHHMMSSZ) for a certificate out of date
#   tls_revoke CA NAME           put NAME's certificate in CA's CRL (crl.pem rewritten)
#   tls_cert_auth CA NAME        an auth value for certificate mode with CA's CRL

tls_require_openssl() {
  if ! command -v openssl >/dev/null 2>&1; then
    echo "[tb] SKIP: the openssl CLI is not installed (tools/install-deps.sh)" >&2
    exit 4
  fi
}

tls_psk() { tb_write_psk "$TB_DIR/$1.psk"; }

tls_peers() {
  local file=$1 id
  shift
  (umask 077 && : >"$file") || return 1
  for id in "$@"; do
    [[ -s $TB_DIR/$id.psk ]] || tls_psk "$id" || return 1
    printf '%s %s\n' "$id" "$(tr -d '\n' <"$TB_DIR/$id.psk")" >>"$file" || return 1
  done
}

tls_psk_auth() { echo "{identity: $1, psk_file: \"$TB_DIR/$1.psk\"}"; }

# One config for all of a CA's commands: `openssl ca` keeps its database (index.txt) in
# the CA's directory, which is what revocation and the CRL are made from. The subject
# name of a certificate comes from TLS_NAME in the environment (also its DNS SAN), its
# extendedKeyUsage from TLS_EKU.
_tls_ca_conf() {  # DIR
  cat >"$1/openssl.cnf" <<EOF
[ ca ]
default_ca = tbca
[ tbca ]
dir = $1
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
certificate = \$dir/ca.pem
private_key = \$dir/ca.key
serial = \$dir/serial
crlnumber = \$dir/crlnumber
default_md = sha256
default_days = 30
default_crl_days = 30
policy = tbpolicy
unique_subject = no
copy_extensions = none
[ tbpolicy ]
commonName = supplied
[ req ]
distinguished_name = tbdn
prompt = no
[ tbdn ]
CN = \${ENV::TLS_NAME}
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ leaf_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = \${ENV::TLS_EKU}
subjectAltName = DNS:\${ENV::TLS_NAME}
authorityKeyIdentifier = keyid
EOF
}

# _tls_key FILE: a P-256 key, mode 0600 (the daemon refuses a key file others can read).
_tls_key() {
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$1" 2>/dev/null)
}

# _tls_openssl WHAT ARGS...: openssl, its chatter to $TB_DIR/openssl.log. The config
# refers to TLS_NAME and TLS_EKU, and openssl refuses a config whose variables are unset
# even in sections the command does not use: they get placeholders.
_tls_openssl() {
  local what=$1
  shift
  if ! TLS_NAME=${TLS_NAME:-unused} TLS_EKU=${TLS_EKU:-clientAuth} openssl "$@" \
    >>"$TB_DIR/openssl.log" 2>&1; then
    tb_fail "openssl $what failed; its log:"
    tail -n 20 "$TB_DIR/openssl.log" >&2
    return 1
  fi
}

tls_ca() {
  local d=$TB_DIR/$1
  mkdir -p "$d/newcerts" && : >"$d/index.txt" && echo 1000 >"$d/serial" &&
    echo 1000 >"$d/crlnumber" && _tls_ca_conf "$d" && _tls_key "$d/ca.key" || return 1
  TLS_NAME="mpudp test CA $1" _tls_openssl "req (CA $1)" req -config "$d/openssl.cnf" \
    -new -x509 -key "$d/ca.key" -days 30 -extensions ca_ext -out "$d/ca.pem" &&
    _tls_crl "$1"
}

_tls_crl() {  # CA
  local d=$TB_DIR/$1
  _tls_openssl "gencrl ($1)" ca -config "$d/openssl.cnf" -gencrl -batch \
    -out "$d/crl.pem"
}

tls_cert() {
  local ca=$1 name=$2 kind=$3 start=${4:-} end=${5:-}
  local d=$TB_DIR/$ca dates=() eku
  case $kind in
    cpe) eku=clientAuth ;;
    conc) eku=serverAuth ;;
    *) tb_fail "tls_cert: kind $kind (cpe or conc)"; return 1 ;;
  esac
  [[ -z $start ]] || dates=(-startdate "$start" -enddate "$end")
  _tls_key "$TB_DIR/$name.key" || return 1
  TLS_NAME=$name _tls_openssl "req ($name)" req -config "$d/openssl.cnf" -new \
    -key "$TB_DIR/$name.key" -out "$TB_DIR/$name.csr" || return 1
  TLS_NAME=$name TLS_EKU=$eku _tls_openssl "ca ($name)" ca -config "$d/openssl.cnf" -batch \
    -notext -extensions leaf_ext "${dates[@]}" -in "$TB_DIR/$name.csr" -out "$TB_DIR/$name.pem"
}

tls_revoke() {
  local d=$TB_DIR/$1
  _tls_openssl "revoke ($2)" ca -config "$d/openssl.cnf" -batch \
    -revoke "$TB_DIR/$2.pem" && _tls_crl "$1"
}

tls_cert_auth() {
  local d=$TB_DIR/$1
  echo "{cert_file: \"$TB_DIR/$2.pem\", key_file: \"$TB_DIR/$2.key\", ca_file: \"$d/ca.pem\", crl_file: \"$d/crl.pem\"}"
}

# tls_log_mark NAME: the number of lines in $TB_DIR/NAME.log now; tls_wait_log_after
# NAME MARK REGEX TIMEOUT_S waits for a matching line after that many (what a daemon that
# keeps running logged for this case, not for an earlier one).
tls_log_mark() { wc -l <"$TB_DIR/$1.log" 2>/dev/null || echo 0; }

_tls_log_after_has() { tail -n "+$(($2 + 1))" "$TB_DIR/$1.log" 2>/dev/null | grep -Eq -- "$3"; }

tls_wait_log_after() {
  tb_poll "$4" _tls_log_after_has "$1" "$2" "$3" && return 0
  echo "[tb] no line matching /$3/ in $1.log (after line $2) in $4 s; what it logged:" >&2
  tail -n "+$(($2 + 1))" "$TB_DIR/$1.log" 2>/dev/null | tail -n 15 | sed 's/^/    /' >&2
  return 1
}
