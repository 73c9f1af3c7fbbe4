#!/usr/bin/env bash
# Mutual authentication with a pre-shared key (docs/PROTOCOL.md, "Authentication"): the
# version 1 key check, which is what `encryption: none` runs; both daemons here are
# configured so. The TLS identities and their failures: test_tls_identity.sh.
#  1. Right key: datagrams flow, in both session modes; the first datagrams of a
#     per-binding flow wait for the handshake instead of being lost.
#  2. While that CPE runs, a second "CPE" (wirepeer) connects with a wrong key, without a
#     key, with garbage, a truncated frame, an oversized length, an unknown type, a wrong
#     version, a frame other than AUTH before authenticating, and silence: each time the
#     concentrator closes the connection and logs why; the real CPE's flow is unaffected.
#  3. The CPE daemon with a wrong key: no traffic, both daemons log the failure.
#  4. auth: none on the concentrator against a CPE with a key: refused, logged; a silent
#     connection to it is still closed at the deadline.
#  5. --check refuses a key file readable by others, and a config without `auth`.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd tools/udpecho tools/udpprobe tools/wirepeer

fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }
PEER=$MPUDP_BUILD/tools/wirepeer
CONC=198.18.2.2:7000

tb_setup || exit 1
# Every config written below (tb_write_configs appends these) runs version 1 in clear text.
export TB_CPE_EXTRA="encryption: none" TB_CONC_EXTRA="encryption: none"
tb_tproxy_rules || exit 1
tb_start_echo || exit 1

# wirepeer_case NAME STEPS...: run the scripted peer from cpe; it must pass (its last
# step is normally expect-close).
wirepeer_case() {
  local name=$1
  shift
  if tb_cpe "$PEER" "$CONC" "$@" >"$TB_DIR/peer-$name.log" 2>&1; then
    echo "ok   wirepeer $name"
  else
    bad "wirepeer $name"; sed 's/^/    /' "$TB_DIR/peer-$name.log" >&2
  fi
}

# conc_logged REGEX: the concentrator logged an authentication failure matching REGEX.
conc_logged() {
  tb_wait_log conc "authentication failed: .*$1" 3 >/dev/null || bad "conc did not log /$1/"
}

conc_count_at_least() { (( $(grep -Ec -- "authentication failed: .*$1" "$TB_DIR/conc.log") >= $2 )); }

probe() { tb_cli "$TB_PROBE" --sizes 1,512 --count 3 --timeout 1500 "$@" 198.18.4.2:7; }

# --- 1. right key, both modes --------------------------------------------------------
for MODE in per-binding multiplexed; do
  tb_start_proxies "$MODE" || exit 1
  # Per-binding: each port is a new connection whose first datagram waits for the key
  # exchange, so nothing may be lost.
  probe --ports 4 >"$TB_DIR/probe-$MODE.log" 2>&1 || bad "$MODE: datagrams lost with the right key"
  tb_wait_log conc "key verified" 3 >/dev/null || bad "$MODE: conc did not log key verified"
  [[ $MODE == multiplexed ]] || tb_stop_proxies || bad "$MODE: daemons exited non-zero"
done

# --- 2. bad peers next to a working CPE ------------------------------------------------
KEY=$(tb_psk_hex)
WRONG=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
NONCE=$(printf '%064d' 0)
HELLO_AUTH=0100002a4d50554401010000 # HELLO, CPE, multiplexed, caps 0x0001, then a nonce
HELLO_AUTH=${HELLO_AUTH}0001$NONCE

wirepeer_case wrongkey "auth-force:$WRONG" expect-close
conc_logged "wrong key"
wirepeer_case nokey hello expect-close
conc_logged "does not authenticate"
wirepeer_case before-auth "raw:$HELLO_AUTH" expect-hello keepalive expect-close
conc_logged "unexpected frame before authentication"
# The next ones share one log bucket ("connection ended before authentication"), which
# lets one line a second through: space them out.
wirepeer_case garbage raw:deadbeefcafebabe0102030405060708 expect-close
conc_logged "protocol error: unknown frame type"
sleep 1.1
wirepeer_case oversized "raw:07000100$(printf '%0512d' 0)" expect-close
conc_logged "protocol error: bad body length"
sleep 1.1
wirepeer_case unknown-type raw:09000000 expect-close
conc_logged "protocol error: unknown frame type"
sleep 1.1
wirepeer_case version raw:0100000a4d505544030100000000 expect-close  # version 3
conc_logged "protocol error: unsupported version"
# Version 2 is known, but it is the one inside TLS.
wirepeer_case version2 raw:0100000a4d505544020100000000 expect-close
conc_logged "HELLO is of the other protocol version"
sleep 1.1
# A frame announcing 64 KiB before authenticating: refused from its header, before any
# buffer grows to that size.
wirepeer_case huge raw:0100ffff4d sleep:200 expect-close
conc_logged "a frame of 65539 bytes before the handshake completed"
# Truncated: a HELLO header announcing 42 bytes, 8 of them sent, then nothing; and a
# peer that sends nothing at all. Both end at the handshake deadline (concentrator.handshake_timeout, 3 s).
wirepeer_case truncated raw:0100002a4d505544 sleep:2500 expect-close
conc_logged "no handshake before the deadline"
sleep 1.1
wirepeer_case silent sleep:2500 expect-close
tb_poll 3 conc_count_at_least "no handshake before the deadline" 2 ||
  bad "conc did not log the silent connection's deadline"
# The right key still works for a scripted peer, and the daemon's flow never noticed.
wirepeer_case rightkey "auth:$KEY" keepalive expect-keepalive
probe >"$TB_DIR/probe-after.log" 2>&1 || bad "the real CPE's flow suffered from the bad peers"
grep -q "tunnel to .* lost" "$TB_DIR/cpe.log" && bad "the real CPE lost its tunnel"

# --- 3. the CPE daemon with a wrong key ---------------------------------------------
tb_stop_daemon cpe || bad "cpe exited non-zero"
tb_write_psk "$TB_DIR/wrong.psk"
TB_CPE_AUTH="{psk_file: \"$TB_DIR/wrong.psk\"}" tb_write_configs multiplexed
tb_start_daemon cpe cpe "$TB_DIR/cpe.yaml"
tb_wait_listen cpe udp 5555 1 10 || bad "cpe with the wrong key did not start"
if probe --min-ok 0.01 >"$TB_DIR/probe-wrong.log" 2>&1; then bad "traffic flowed with a wrong key"; fi
tb_wait_log cpe "authentication failed: wrong key" 3 >/dev/null || bad "cpe did not log the wrong key"
conc_logged "connection ended before authentication"
tb_stop_daemon cpe || bad "cpe exited non-zero"

# --- 4. auth: none on the concentrator ----------------------------------------------
tb_stop_daemon conc || bad "conc exited non-zero"
TB_CONC_AUTH=none tb_write_configs multiplexed
tb_start_daemon conc conc "$TB_DIR/conc.yaml"
tb_wait_listen conc tcp 7000 1 10 || bad "conc with auth: none did not start"
wirepeer_case mismatch "raw:$HELLO_AUTH" expect-close
conc_logged "requires a pre-shared key and this side has auth: none"
wirepeer_case none-silent sleep:2500 expect-close
conc_logged "no handshake before the deadline"
wirepeer_case none-ok hello expect-hello keepalive expect-keepalive
tb_stop_daemon conc || bad "conc exited non-zero"

# --- 5. --check ------------------------------------------------------------------------
tb_write_configs multiplexed
cp "$TB_DIR/psk" "$TB_DIR/open.psk"
chmod 644 "$TB_DIR/open.psk"
sed "s|$TB_DIR/psk|$TB_DIR/open.psk|" "$TB_DIR/conc.yaml" >"$TB_DIR/open.yaml"
if out=$("$TB_DAEMON" --check -c "$TB_DIR/open.yaml" 2>&1); then
  bad "--check accepted a world-readable key file"
elif ! grep -q "refusing a key file that group or others can access (chmod 600" <<<"$out"; then
  bad "--check message for a world-readable key: $out"
else
  echo "ok   --check: $out"
fi
grep -v '^auth:' "$TB_DIR/conc.yaml" >"$TB_DIR/noauth.yaml"
if out=$("$TB_DAEMON" --check -c "$TB_DIR/noauth.yaml" 2>&1); then
  bad "--check accepted a concentrator without auth"
elif ! grep -qF "role concentrator needs auth: {peers_file: ...}, auth: {cert_file: ..., key_file: ..., ca_file: ...} or auth: none" <<<"$out"; then
  bad "--check message without auth: $out"
else
  echo "ok   --check: $out"
fi

((fail == 0)) || exit 1
echo "PASS: test_auth"
