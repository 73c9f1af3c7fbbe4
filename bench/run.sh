#!/usr/bin/env bash
# bench/run.sh: the benchmark suite (issues 7 and 18). Not a test, not part of CI.
#
#   bench/run.sh [--quick] [--only SCENARIO,...] [--systems SYSTEM,...] [--rounds N]
#                [--json FILE] [--no-install]
#
# Builds the namespace testbed of test/netns/lib.sh once per system and runs the same
# scenarios against each, one system after another (--rounds N: N times, every other
# round in reverse order; each figure is the median of its rounds):
#   direct           kernel routing, no proxy (the reference)
#   mpudp-mux        mpudpd, session_mode multiplexed, encryption: tls (the default)
#   mpudp-mux-clear  the same, encryption: none on both sides
#   mpudp-pb         mpudpd, session_mode per-binding, encryption: tls
#   mpudp-pb-clear   the same, encryption: none on both sides
#   mpudp-mux-log    mpudp-mux with the operator's binding log to a file
#                    (concentrator.binding_log.path): what the log costs (issue 19)
#   mpudp-copies     mpudp-mux with tunnel.copies on both sides and the CPE's paths up0 and
#                    up1: light flows in copies over a plain TCP carrier per uplink (issue 20)
#   mpudp-pb-2i      mpudp-pb with two concentrator daemons sharing the listen address
#                    (concentrator.reuse_port, docs/SCALE.md), both on the proxy core:
#                    what a second instance costs (issue 19)
#   v2ray            v2ray dokodemo-door (TPROXY) -> VLESS over TCP (no encryption), the TCP
#                    made MPTCP by an `mptcpize run socat` bridge on both ends
#   v2ray-tls        the same with VLESS over TLS (a CA and a server certificate made with
#                    openssl for the run): the encrypting v2ray peer
#   ss               shadowsocks-libev ss-redir -U -> ss-server (UDP relay: UDP over UDP),
#                    AEAD cipher chacha20-ietf-poly1305
# Scenarios: capacity pps64 idle_rtt latency_load latency_prio aggregation churn burst_churn
# rss_bindings
# aggregation_delay realtime callgrind
# (bench/README.md says what each measures). Prints a table and the targets of issues 7
# and 18, and writes JSON to --json FILE (default: bench/results-<date>.json).
#
# Environment: MPUDP_BUILD (default <repo>/build-bench; built with `cmake --build`),
# BENCH_LOAD_CPU (0) and BENCH_PROXY_CPU (1): cores for load+echo and for the proxies,
# BENCH_CC (cubic): the TCP congestion control of every testbed namespace, every system
# alike (empty: the host's default, which new namespaces inherit); BENCH_COPY_SPARES:
# tunnel.copy_spares of mpudp-copies' CPE (unset: the default); BENCH_CALL_DIR: where
# realtime keeps each call's per-datagram times (unset: not kept).
set -u

BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export MPUDP_BUILD=${MPUDP_BUILD:-$BENCH_REPO/build-bench}
export TB_QUIET=${TB_QUIET:-1}
# shellcheck source=../test/netns/lib.sh
source "$BENCH_REPO/test/netns/lib.sh"
# shellcheck source=../test/netns/delay_lib.sh
source "$BENCH_REPO/test/netns/delay_lib.sh"

LOAD=$MPUDP_BUILD/tools/udpload
FLOOD=$MPUDP_BUILD/tools/udpflood
SINK=$MPUDP_BUILD/tools/wiresink
CTL=$MPUDP_BUILD/daemon/mpudpctl
CALLPROBE=$BENCH_REPO/test/netns/callprobe.py
LOAD_CPU=${BENCH_LOAD_CPU:-0}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
# The kernel's own default, and what a stock Debian or OpenWrt runs: results must not
# depend on what the host running the bench was set to (bbr changes every TCP carrier's
# figures, each its own way: bench/README.md).
BENCH_CC=${BENCH_CC-cubic}

# aggregation_delay and realtime each run on a testbed of their own and leave a fresh one:
# after the others, so that these see the system as they always did (churn's memory
# figure counts what the scenarios before it left).
ALL_SCENARIOS=(capacity pps64 idle_rtt latency_load latency_prio aggregation churn burst_churn
  rss_bindings aggregation_delay realtime callgrind)
ALL_SYSTEMS=(direct mpudp-mux mpudp-mux-clear mpudp-mux-log mpudp-copies mpudp-pb mpudp-pb-clear mpudp-pb-2i v2ray v2ray-tls ss)
QUICK=0
ONLY=
SYSTEMS=
JSON_OUT=
INSTALL=1
ROUNDS=1

while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --only) ONLY=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --systems) SYSTEMS=$2; shift ;;
    --json) JSON_OUT=$2; shift ;;
    --no-install) INSTALL=0 ;;
    -h | --help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -n $ONLY ]] && IFS=, read -r -a SCENARIOS <<<"$ONLY" || SCENARIOS=("${ALL_SCENARIOS[@]}")
[[ -n $SYSTEMS ]] && IFS=, read -r -a RUN_SYSTEMS <<<"$SYSTEMS" || RUN_SYSTEMS=("${ALL_SYSTEMS[@]}")
for sc in "${SCENARIOS[@]}"; do
  [[ " ${ALL_SCENARIOS[*]} " == *" $sc "* ]] || { echo "bench: unknown scenario $sc (${ALL_SCENARIOS[*]})" >&2; exit 2; }
done
for sys in "${RUN_SYSTEMS[@]}"; do
  [[ " ${ALL_SYSTEMS[*]} " == *" $sys "* ]] || { echo "bench: unknown system $sys (${ALL_SYSTEMS[*]})" >&2; exit 2; }
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench: --rounds wants a positive number, not $ROUNDS" >&2; exit 2; }
JSON_OUT=${JSON_OUT:-$BENCH_REPO/bench/results-$(date +%Y%m%d-%H%M%S).json}

# Durations: full vs --quick (each scenario at most ~15 s per system in quick mode).
if ((QUICK)); then
  PROBE_S=0.5 DRAIN_MS=200 SEARCH_STEPS=2 IDLE_S=1.5 LOAD_S=3.5 AGG_S=2 AGG_WARM_S=0.5 CHURN_N=1000
  FLOOD_N=100000 FLOOD_PPS=40000 CG_N=3000 CG_PPS=1500
else
  PROBE_S=3 DRAIN_MS=1000 SEARCH_STEPS=6 IDLE_S=10 LOAD_S=15 AGG_S=12 AGG_WARM_S=2 CHURN_N=5000
  FLOOD_N=100000 FLOOD_PPS=20000 CG_N=20000 CG_PPS=2000
fi
# realtime: one call, the same in both modes: an outage needs a stretch before it, the
# outage and a stretch after it to be seen at all.
RT_CALL_S=12 RT_DARK_AT_S=4 RT_DARK_S=3

log() { echo "[bench] $*" >&2; }
declare -A RES=()    # "system.metric" -> value
declare -A NOTE=()   # system -> why it was skipped

has_scenario() { local s; for s in "${SCENARIOS[@]}"; do [[ $s == "$1" ]] && return 0; done; return 1; }
fcalc() { awk "BEGIN { printf \"%.6g\", $* }"; }
jget() {  # JSON KEY: a number from udpload's one-line JSON (nested keys as a.b)
  python3 -c 'import json,sys
d=json.loads(sys.argv[1])
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$1" "$2" 2>/dev/null || echo nan
}

# ---------------------------------------------------------------------------------------
# Prerequisites

[[ $EUID -eq 0 ]] || { echo "bench: needs root" >&2; exit 1; }
need_built=("$LOAD" "$FLOOD" "$TB_ECHO" "$TB_DAEMON" "$CTL")
has_scenario aggregation_delay || has_scenario realtime && need_built+=("$TB_NFQDELAY")
for f in "${need_built[@]}"; do
  [[ -x $f ]] || { echo "bench: $f missing: cmake -S $BENCH_REPO -B $MPUDP_BUILD -DMPUDP_TESTS=OFF && cmake --build $MPUDP_BUILD" >&2; exit 1; }
done

want_system() { local s; for s in "${RUN_SYSTEMS[@]}"; do [[ $s == "$1" ]] && return 0; done; return 1; }
if ((INSTALL)); then
  pkgs=()
  want_v2ray=0
  want_system v2ray || want_system v2ray-tls && want_v2ray=1
  ((want_v2ray)) && ! command -v v2ray >/dev/null && pkgs+=(v2ray)
  want_system ss && ! command -v ss-redir >/dev/null && pkgs+=(shadowsocks-libev)
  ((want_v2ray)) && ! command -v mptcpize >/dev/null && pkgs+=(mptcpize)
  command -v socat >/dev/null || pkgs+=(socat)
  command -v valgrind >/dev/null || pkgs+=(valgrind)
  if ((${#pkgs[@]})); then
    log "installing ${pkgs[*]}"
    apt-get update -qq >/dev/null 2>&1
    for p in "${pkgs[@]}"; do
      if [[ -z $(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)"') ]]; then
        log "package $p is not available here"
        continue
      fi
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null 2>&1 ||
        log "apt-get install $p failed"
    done
  fi
fi

BENCH_DIR=$(mktemp -d /tmp/mpudp-bench.XXXXXX)
bench_exit() { tb_cleanup; rm -rf "$BENCH_DIR"; }

# ---------------------------------------------------------------------------------------
# Per-system bring-up. Each system gets a fresh testbed; PROXY_PIDS lists nothing: the
# proxy's processes are everything that runs in the cpe and conc namespaces.

DEST4=198.18.4.2:7
DEST6='[2001:db8:4::2]:7'

start_echo() {
  tb_bg echo srv taskset -c "$LOAD_CPU" "$TB_ECHO" "$DEST4" "$DEST6"
  tb_wait_listen srv udp 7 2 5
}

proxy_pids() {
  ip netns pids "$TB_NS_CPE" 2>/dev/null
  ip netns pids "$TB_NS_CONC" 2>/dev/null
}

# CPU ticks (utime+stime+cutime+cstime) of every proxy process, or of those in one
# namespace (cpe or conc).
proxy_ticks() {
  local p t=0 v pids
  if [[ -n ${1:-} ]]; then pids=$(ip netns pids "$(_tb_ns "$1")" 2>/dev/null); else pids=$(proxy_pids); fi
  for p in $pids; do
    v=$(awk '{ sub(/.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

# Proportional set size in KiB of the processes in a namespace (cpe or conc): a forking
# peer (socat) shares most pages among its children, so summing their RSS would count
# them many times over.
ns_pss_kib() {
  local ns p t=0 v
  ns=$(_tb_ns "$1")
  for p in $(ip netns pids "$ns" 2>/dev/null); do
    v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null)
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

# RSS in KiB of the processes in a namespace (cpe or conc).
ns_rss_kib() {
  local ns p t=0 v
  ns=$(_tb_ns "$1")
  for p in $(ip netns pids "$ns" 2>/dev/null); do
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

# set_encryption FILE VALUE: the config's top-level `encryption:` set to VALUE, whatever
# the testbed wrote there.
set_encryption() {
  sed -i -e '/^encryption:/d' "$1" && echo "encryption: $2" >>"$1"
}

write_mpudp_configs() {  # MODE ENCRYPTION (tls or none)
  # The testbed's paths have a steady RTT (veth and tbf, no jitter): mpudp runs with the
  # setting for such uplinks (docs/CONFIG.md, tunnel.limit_path_queue). TB_CPE_EXTRA and
  # TB_CONC_EXTRA, when set (even empty), replace it.
  local tunnel=$'tunnel:\n  limit_path_queue: true'
  TB_CPE_EXTRA=${TB_CPE_EXTRA-$tunnel} TB_CONC_EXTRA=${TB_CONC_EXTRA-$tunnel} \
    tb_write_configs "$1" 300s || return 1
  local f
  for f in "$TB_DIR/cpe.yaml" "$TB_DIR/conc.yaml"; do
    sed -i -e 's/^log_level: debug/log_level: info/' \
      -e 's/^  idle_timeout: 300s$/  idle_timeout: 300s\n  max: 200000/' "$f"
    # Written out even for the default (tls): a daemon that predates the key refuses the
    # config (one that parses it but predates the wiring is caught by tls_in_use).
    set_encryption "$f" "$2" || return 1
  done
  sed -i -e 's/^concentrator:$/concentrator:\n  max_bindings_per_cpe: 200000/' "$TB_DIR/conc.yaml"
}

# CONC_BINDING_LOG=1: the concentrator writes its binding log to $TB_DIR/bindings.log.
# CONC_INSTANCES (1): concentrator daemons sharing the listen addresses (reuse_port), each
# with its control socket $TB_DIR/conc.sock, conc2.sock, ...; CONC_WRAPPER: a command the
# concentrators run under (e.g. valgrind), like the CPE's WRAPPER.
start_mpudp() {  # MODE ENCRYPTION [WRAPPER...] (wrapper for the CPE daemon, e.g. valgrind)
  local mode=$1 enc=$2 n=${CONC_INSTANCES:-1} i name
  shift 2
  tb_tproxy_rules || return 1
  write_mpudp_configs "$mode" "$enc" || return 1
  ((n > 1)) && sed -i 's/^concentrator:$/concentrator:\n  reuse_port: true/' "$TB_DIR/conc.yaml"
  if [[ ${COPIES:-0} == 1 ]]; then
    local f
    for f in "$TB_DIR/cpe.yaml" "$TB_DIR/conc.yaml"; do
      if grep -q '^tunnel:$' "$f"; then
        sed -i 's/^tunnel:$/tunnel:\n  copies: true/' "$f"
      else
        printf 'tunnel:\n  copies: true\n' >>"$f"
      fi
    done
    printf 'paths:\n  - interface: up0\n  - interface: up1\n' >>"$TB_DIR/cpe.yaml"
    # BENCH_COPY_SPARES: tunnel.copy_spares for the CPE (the default otherwise).
    [[ -n ${BENCH_COPY_SPARES:-} ]] &&
      sed -i "s/^  copies: true\$/  copies: true\n  copy_spares: $BENCH_COPY_SPARES/" "$TB_DIR/cpe.yaml"
  fi
  [[ ${CONC_BINDING_LOG:-0} == 1 ]] &&
    sed -i "s|^concentrator:\$|concentrator:\n  binding_log: {path: $TB_DIR/bindings.log}|" "$TB_DIR/conc.yaml"
  for ((i = 1; i <= n; i++)); do
    name=conc
    ((i > 1)) && name=conc$i
    [[ $name == conc ]] || sed "s|$TB_DIR/conc.sock|$TB_DIR/$name.sock|" "$TB_DIR/conc.yaml" >"$TB_DIR/$name.yaml"
    # shellcheck disable=SC2086
    tb_bg "$name" conc taskset -c "$PROXY_CPU" ${CONC_WRAPPER:-} "$TB_DAEMON" -c "$TB_DIR/$name.yaml"
    tb_wait_listen conc tcp "$TB_CONC_PORT" "$i" 30 || { tail "$TB_DIR/$name.log" >&2; return 1; }
  done
  tb_bg cpe cpe taskset -c "$PROXY_CPU" "$@" "$TB_DAEMON" -c "$TB_DIR/cpe.yaml"
  tb_wait_listen cpe udp "$TB_TPROXY_PORT" 1 60 || { tail "$TB_DIR/cpe.log" >&2; return 1; }
}

V2RAY_UUID=6f1c2f3e-8d4b-4e7a-9a55-0b1e5c3d2a10
V2RAY_SNI=conc.bench.invalid

# v2ray_certs DIR: a CA and a server certificate for V2RAY_SNI signed by it (P-256), for
# v2ray-tls. The CPE's v2ray verifies the server against that CA alone, as a deployment
# with its own CA would.
v2ray_certs() {
  local d=$1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=mpudp-bench-ca -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign -keyout "$d/v2ray-ca.key" -out "$d/v2ray-ca.pem" &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$V2RAY_SNI" \
      -keyout "$d/v2ray-srv.key" -out "$d/v2ray-srv.csr" &&
    printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$V2RAY_SNI" >"$d/v2ray-srv.ext" &&
    openssl x509 -req -in "$d/v2ray-srv.csr" -CA "$d/v2ray-ca.pem" -CAkey "$d/v2ray-ca.key" \
      -CAcreateserial -days 2 -extfile "$d/v2ray-srv.ext" -out "$d/v2ray-srv.pem"
}

start_v2ray() {  # SYSTEM SECURITY (none: VLESS over TCP; tls: VLESS over TLS)
  local sys=$1 cpe_stream='{ "network": "tcp" }' conc_stream='{ "network": "tcp" }'
  command -v v2ray >/dev/null || { NOTE[$sys]="package v2ray not installed"; return 2; }
  command -v mptcpize >/dev/null || { NOTE[$sys]="package mptcpize not installed"; return 2; }
  if [[ $2 == tls ]]; then
    command -v openssl >/dev/null || { NOTE[$sys]="openssl not installed"; return 2; }
    v2ray_certs "$TB_DIR" >>"$TB_DIR/openssl.log" 2>&1 ||
      { tail "$TB_DIR/openssl.log" >&2; return 1; }
    cpe_stream='{ "network": "tcp", "security": "tls", "tlsSettings": {
        "serverName": "'$V2RAY_SNI'", "disableSystemRoot": true,
        "certificates": [ { "usage": "verify", "certificateFile": "'$TB_DIR/v2ray-ca.pem'" } ] } }'
    conc_stream='{ "network": "tcp", "security": "tls", "tlsSettings": {
        "certificates": [ { "certificateFile": "'$TB_DIR/v2ray-srv.pem'",
          "keyFile": "'$TB_DIR/v2ray-srv.key'" } ] } }'
  fi
  tb_tproxy_rules || return 1
  cat >"$TB_DIR/v2ray-cpe.json" <<EOF
{ "log": { "loglevel": "warning" },
  "inbounds": [ { "tag": "tproxy4", "listen": "0.0.0.0", "port": $TB_TPROXY_PORT,
      "protocol": "dokodemo-door", "settings": { "network": "udp", "followRedirect": true },
      "streamSettings": { "sockopt": { "tproxy": "tproxy" } } },
    { "tag": "tproxy6", "listen": "::", "port": $TB_TPROXY_PORT,
      "protocol": "dokodemo-door", "settings": { "network": "udp", "followRedirect": true },
      "streamSettings": { "sockopt": { "tproxy": "tproxy" } } } ],
  "outbounds": [ { "protocol": "vless",
      "settings": { "vnext": [ { "address": "127.0.0.1", "port": 10800,
        "users": [ { "id": "$V2RAY_UUID", "encryption": "none" } ] } ] },
      "streamSettings": $cpe_stream } ] }
EOF
  cat >"$TB_DIR/v2ray-conc.json" <<EOF
{ "log": { "loglevel": "warning" },
  "inbounds": [ { "listen": "127.0.0.1", "port": 10801, "protocol": "vless",
      "settings": { "clients": [ { "id": "$V2RAY_UUID" } ], "decryption": "none" },
      "streamSettings": $conc_stream } ],
  "outbounds": [ { "protocol": "freedom" } ] }
EOF
  # The MPTCP bridge: cpe 127.0.0.1:10800 => conc 198.18.2.2:7000 (MPTCP) -> 127.0.0.1:10801.
  # With TLS it relays the records untouched: the TLS ends are the two v2rays.
  tb_bg socat-conc conc taskset -c "$PROXY_CPU" mptcpize run socat \
    TCP-LISTEN:"$TB_CONC_PORT",fork,reuseaddr,backlog=1024 TCP:127.0.0.1:10801
  tb_bg v2ray-conc conc taskset -c "$PROXY_CPU" v2ray -config "$TB_DIR/v2ray-conc.json"
  tb_bg socat-cpe cpe taskset -c "$PROXY_CPU" mptcpize run socat \
    TCP-LISTEN:10800,bind=127.0.0.1,fork,reuseaddr,backlog=1024 TCP:"$TB_SVC4:$TB_CONC_PORT"
  tb_bg v2ray-cpe cpe taskset -c "$PROXY_CPU" v2ray -config "$TB_DIR/v2ray-cpe.json"
  tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 && tb_wait_listen conc tcp 10801 1 10 &&
    tb_wait_listen cpe tcp 10800 1 10 && tb_wait_listen cpe udp "$TB_TPROXY_PORT" 1 10 ||
    { tail "$TB_DIR"/v2ray-*.log "$TB_DIR"/socat-*.log >&2; return 1; }
}

SS_KEY=bench-$$-key
start_ss() {
  command -v ss-redir >/dev/null || { NOTE[ss]="package shadowsocks-libev not installed"; return 2; }
  tb_tproxy_rules || return 1
  tb_bg ss-server conc taskset -c "$PROXY_CPU" ss-server -U -s "$TB_SVC4" -p 8388 \
    -k "$SS_KEY" -m chacha20-ietf-poly1305 -t 300
  # One ss-redir per family on the same port (--reuse-port): bound to :: alone it does
  # not take IPv4, bound to 0.0.0.0 it does not take IPv6.
  tb_bg ss-redir cpe taskset -c "$PROXY_CPU" ss-redir -U -s "$TB_SVC4" -p 8388 \
    -b 0.0.0.0 -l "$TB_TPROXY_PORT" --reuse-port -k "$SS_KEY" -m chacha20-ietf-poly1305 -t 300
  tb_bg ss-redir6 cpe taskset -c "$PROXY_CPU" ss-redir -U -s "$TB_SVC4" -p 8388 \
    -b :: -l "$TB_TPROXY_PORT" --reuse-port -k "$SS_KEY" -m chacha20-ietf-poly1305 -t 300
  tb_wait_listen conc udp 8388 1 10 && tb_wait_listen cpe udp "$TB_TPROXY_PORT" 2 10 ||
    { tail "$TB_DIR"/ss-*.log >&2; return 1; }
}

# A fresh testbed, its namespaces on BENCH_CC.
bench_setup() {
  tb_setup || return 1
  [[ -n $BENCH_CC ]] || return 0
  local ns
  for ns in "$TB_NS_CLI" "$TB_NS_CPE" "$TB_NS_CONC" "$TB_NS_SRV"; do
    # A namespace may only pick an algorithm the host allows (or any, with CAP_NET_ADMIN
    # over the host): where it may not, say so and what it may pick.
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_congestion_control="$BENCH_CC" 2>/dev/null && continue
    local allowed available
    allowed=$(sysctl -n net.ipv4.tcp_allowed_congestion_control)
    available=$(sysctl -n net.ipv4.tcp_available_congestion_control)
    if [[ " $available " == *" $BENCH_CC "* ]]; then
      # The kernel has it; only the host's list keeps namespaces from choosing it.
      echo "bench: congestion control $BENCH_CC is not in the host's net.ipv4.tcp_allowed_congestion_control ($allowed), so a namespace cannot choose it: widen that list in the host's namespace (sysctl -w net.ipv4.tcp_allowed_congestion_control=\"$allowed $BENCH_CC\"), or set BENCH_CC" >&2
    else
      echo "bench: congestion control $BENCH_CC is not in this kernel (net.ipv4.tcp_available_congestion_control: $available); set BENCH_CC" >&2
    fi
    return 1
  done
}

# bring_up SYSTEM: a fresh testbed running SYSTEM. BRING_UP_PATHS: a function that sets up
# the paths (delays, loss) before the system starts.
bring_up() {
  bench_setup || return 1
  trap bench_exit EXIT
  start_echo || return 1
  [[ -z ${BRING_UP_PATHS:-} ]] || "$BRING_UP_PATHS" || return 1
  case $1 in
    direct) tb_direct_routing ;;
    mpudp-mux) start_mpudp multiplexed tls ;;
    mpudp-mux-clear) start_mpudp multiplexed none ;;
    mpudp-pb) start_mpudp per-binding tls ;;
    mpudp-pb-clear) start_mpudp per-binding none ;;
    mpudp-mux-log) CONC_BINDING_LOG=1 start_mpudp multiplexed tls ;;
    mpudp-copies) COPIES=1 start_mpudp multiplexed tls ;;
    mpudp-pb-2i) CONC_INSTANCES=2 start_mpudp per-binding tls ;;
    v2ray) start_v2ray v2ray none ;;
    v2ray-tls) start_v2ray v2ray-tls tls ;;
    ss) start_ss ;;
  esac
}

tear_down() { tb_cleanup; trap bench_exit EXIT; }

# ---------------------------------------------------------------------------------------
# Measurements (udpload runs in cli, pinned to the load core)

load() { tb_cli taskset -c "$LOAD_CPU" "$LOAD" --json "$@" 2>>"$BENCH_DIR/load.log"; }

# One search probe, after a short pause so that the previous probe's queues have drained.
probe() { sleep 0.2; load --size "$1" --flows 4 --rate "$2" --duration "$PROBE_S" --timeout "$DRAIN_MS" "$DEST4"; }

# One round trip through the system must work before anything is measured.
warm_up() {
  local out
  out=$(load --rate 200 --duration 0.5 --timeout 1000 --size 64 "$DEST4")
  [[ $(jget "$out" echoed) -ge 50 ]]
}

# search SIZE -> sets SEARCH_PPS (best rate with < 1 % loss, no local send error).
search() {
  local size=$1 lo=0 hi rate out loss sentp ok
  rate=$(( size >= 1000 ? 8000 : 40000 ))
  hi=0
  # Double until it fails (at most 8 times), then bisect SEARCH_STEPS times.
  local i
  for ((i = 0; i < 8; i++)); do
    out=$(probe "$size" "$rate")
    loss=$(jget "$out" loss_pct); sentp=$(jget "$out" send_errors)
    ok=$(fcalc "($loss < 1 && $sentp == 0) ? 1 : 0")
    log "  search $size B: $rate pps -> loss $loss %"
    if [[ $ok == 1 ]]; then lo=$rate; rate=$((rate * 2)); continue; fi
    hi=$rate
    ((lo > 0 || rate < 1000)) && break
    rate=$((rate / 4))  # the first rate already failed: go down quickly
  done
  if ((hi > 0)); then
    for ((i = 0; i < SEARCH_STEPS; i++)); do
      rate=$(( (lo + hi) / 2 ))
      ((rate > 0)) || break
      out=$(probe "$size" "$rate")
      loss=$(jget "$out" loss_pct); sentp=$(jget "$out" send_errors)
      ok=$(fcalc "($loss < 1 && $sentp == 0) ? 1 : 0")
      log "  search $size B: $rate pps -> loss $loss %"
      if [[ $ok == 1 ]]; then lo=$rate; else hi=$rate; fi
    done
  fi
  SEARCH_PPS=$lo
}

sc_capacity() {  # SYS
  search 1200
  RES[$1.capacity_mbit]=$(fcalc "$SEARCH_PPS * 1200 * 8 / 1e6")
  RES[$1.capacity_pps]=$SEARCH_PPS
  ((SEARCH_PPS > 0)) || return 0
  # CPU seconds per Gbit at that rate: proxy processes' ticks over a run at capacity.
  [[ $1 == direct ]] && return 0
  local t0 t1 c0 c1 out hz
  hz=$(getconf CLK_TCK)
  t0=$(proxy_ticks)
  c0=$(proxy_ticks conc)
  out=$(load --size 1200 --flows 4 --rate "$SEARCH_PPS" --duration "$PROBE_S" --timeout "$DRAIN_MS" "$DEST4")
  t1=$(proxy_ticks)
  c1=$(proxy_ticks conc)
  local gbit n
  n=$(jget "$out" echoed)
  gbit=$(fcalc "$n * 1200 * 8 / 1e9")
  RES[$1.cpu_s_per_gbit]=$(fcalc "($t1 - $t0) / $hz / ($gbit > 0 ? $gbit : 1e-9)")
  # The concentrator's share, per datagram it relays (each echoed one crosses it twice):
  # the figure to size a concentrator's cores by (docs/SCALE.md). Tick resolution (10 ms)
  # over a run of PROBE_S: a few percent.
  [[ $1 == mpudp-* ]] &&
    RES[$1.conc_cpu_us_per_dgram]=$(fcalc "($c1 - $c0) / $hz * 1e6 / (2 * ($n > 0 ? $n : 1e-9))")
  # How the kernel spread the per-binding connections (the load's 4 flows and what is left
  # of the search's) over the instances.
  if [[ $1 == *-2i ]]; then
    local counts=() sock
    for sock in "$TB_DIR"/conc*.sock; do
      counts+=("$(tb_conc "$CTL" -s "$sock" status --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["bindings"]["count"])' 2>/dev/null)")
    done
    RES[$1.bindings_per_instance]="\"$(IFS=/; echo "${counts[*]}")\""
  fi
}

sc_pps64() {
  search 64
  RES[$1.pps64]=$SEARCH_PPS
}

sc_idle_rtt() {
  local out
  out=$(load --size 64 --rate 50 --duration "$IDLE_S" --timeout 1000 "$DEST4")
  RES[$1.idle_rtt4_p50_us]=$(jget "$out" rtt_us.p50)
  RES[$1.idle_rtt4_p99_us]=$(jget "$out" rtt_us.p99)
  out=$(load --size 64 --rate 50 --duration "$IDLE_S" --timeout 1000 "$DEST6")
  if [[ $(jget "$out" echoed) -gt 0 ]]; then
    RES[$1.idle_rtt6_p50_us]=$(jget "$out" rtt_us.p50)
    RES[$1.idle_rtt6_p99_us]=$(jget "$out" rtt_us.p99)
  else
    RES[$1.idle_rtt6_p50_us]=fail
  fi
}

# under_load SYS PREFIX [prio]: a 50 pps flow's RTT beside a bulk flow that offers 150
# Mbit/s into the two 50 Mbit/s paths (tb_shape_uplinks, `prio`: priority queues).
under_load() {
  tb_shape_uplinks 50mbit ${3:-} || return 1
  local bulk_out="$BENCH_DIR/bulk.json" out
  load --size 1200 --mbit 150 --duration "$LOAD_S" --timeout 500 "$DEST4" >"$bulk_out" &
  local bulk=$!
  sleep 1
  out=$(load --size 64 --rate 50 --duration "$(fcalc "$LOAD_S - 1.5")" --timeout 1000 "$DEST4")
  wait "$bulk"
  RES[$1.$2_rtt_p50_us]=$(jget "$out" rtt_us.p50)
  RES[$1.$2_rtt_p99_us]=$(jget "$out" rtt_us.p99)
  RES[$1.$2_probe_loss_pct]=$(jget "$out" loss_pct)
  RES[$1.$2_bulk_goodput_mbit]=$(jget "$(cat "$bulk_out")" goodput_mbit)
  tb_unshape_uplinks
}
sc_latency_load() { under_load "$1" load; }
sc_latency_prio() { under_load "$1" prio prio; }

links_tx_bytes() {  # "CPE_UPLINKS_TX CONC_WANS_TX": bytes sent on both shaped paths each way
  echo "$(( $(tb_tx_bytes cpe up0) + $(tb_tx_bytes cpe up1) )) $(( $(tb_tx_bytes conc wan0) + $(tb_tx_bytes conc wan1) ))"
}

# aggregate SYS PREFIX: the aggregation run, its figures stored as PREFIX_* (agg, aggd).
aggregate() {
  local p=$2
  tb_shape_uplinks 50mbit || return 1
  local a0 a1 b0 b1 out u0 u1 w0 w1 t0 t1
  local out_f="$BENCH_DIR/$p.json"
  [[ $1 == mpudp-* ]] && agg_drops "$1" "$p" before
  a0=$(tb_tx_bytes cpe up0); a1=$(tb_tx_bytes cpe up1)
  load --size 1200 --mbit 150 --duration "$AGG_S" --warmup "$AGG_WARM_S" --timeout 500 \
    "$DEST4" >"$out_f" &
  local lp=$!
  # How busy the shaped links are in (about) the window steady goodput counts: the CPE's
  # uplinks carry the datagrams, the concentrator's the echoes; each also the other's ACKs.
  sleep "$AGG_WARM_S"
  u0=$(links_tx_bytes); t0=$(date +%s.%N)
  sleep "$(fcalc "$AGG_S - $AGG_WARM_S - 0.1")"
  u1=$(links_tx_bytes); t1=$(date +%s.%N)
  wait "$lp"
  out=$(cat "$out_f")
  b0=$(tb_tx_bytes cpe up0); b1=$(tb_tx_bytes cpe up1)
  w0=${u0% *} w1=${u1% *}
  RES[$1.${p}_link_up_mbit]=$(fcalc "($w1 - $w0) * 8 / ($t1 - $t0) / 1000000")
  w0=${u0#* } w1=${u1#* }
  RES[$1.${p}_link_down_mbit]=$(fcalc "($w1 - $w0) * 8 / ($t1 - $t0) / 1000000")
  RES[$1.${p}_goodput_mbit]=$(jget "$out" goodput_mbit)
  RES[$1.${p}_steady_goodput_mbit]=$(jget "$out" steady_goodput_mbit)
  RES[$1.${p}_loss_pct]=$(jget "$out" loss_pct)
  RES[$1.${p}_reordered]=$(jget "$out" reordered)
  local d0=$((b0 - a0)) d1=$((b1 - a1))
  RES[$1.${p}_share_up0_pct]=$(fcalc "100 * $d0 / ($d0 + $d1 + 1)")
  RES[$1.${p}_share_up1_pct]=$(fcalc "100 * $d1 / ($d0 + $d1 + 1)")
  # The subflows are the carrier's, not the scenario's: taken once, in the plain run.
  if [[ $p == agg ]]; then
    RES[$1.subflows]=$(tb_mptcp_max_subflows cpe)
    RES[$1.subflow_paths]="\"$(tb_subflow_paths)\""
  fi
  [[ $1 == mpudp-* ]] && agg_drops "$1" "$p"
  tb_unshape_uplinks
}
sc_aggregation() { aggregate "$1" agg; }

# delay_usable SCENARIO: what the delayers need is there; if not, says so (the scenario
# is then skipped, not failed: tb_path_require would end the whole bench).
delay_usable() {
  local t
  for t in iptables ip6tables; do
    command -v "$t" >/dev/null || { log "$1: skipped: $t is not installed"; return 1; }
  done
  [[ -x $TB_NFQDELAY ]] || { log "$1: skipped: $TB_NFQDELAY is not built"; return 1; }
}

# delayed_testbed SYSTEM PATHS_FN: a fresh testbed whose paths PATHS_FN sets up before
# SYSTEM starts. Real uplinks have their round trips from the first packet; delay added
# under a running system leaves its long-lived connections (mpudp's, multiplexed) with the
# min RTT of the undelayed veths, which the kernel keeps for net.ipv4.tcp_min_rtt_wlen
# (300 s) and mpudp's limit_path_queue reads: the whole path delay then looks like queue
# (mpudp-mux's aggd steady goodput in quick runs: 3-4 Mbit/s with the delays added under
# it, 8 with them there from the start).
#
# mpudp runs there with its defaults (unless TB_CPE_EXTRA / TB_CONC_EXTRA say otherwise):
# limit_path_queue is for uplinks whose RTT is steady, and the delayers, user-space
# timers on a busy host, add jitter that it reads as queue (mpudp-mux's aggd steady
# goodput in a quick run with it: 4.6 Mbit/s). Issue 20 asks for the defaults anyway.
delayed_testbed() {
  tear_down
  TB_CPE_EXTRA=${TB_CPE_EXTRA-} TB_CONC_EXTRA=${TB_CONC_EXTRA-} BRING_UP_PATHS=$2 \
    bring_up "$1" && warm_up || return 1
  sleep 1.5  # the subflows joined over the slower path, the express connection's too
}

# plain_testbed SYSTEM: a fresh testbed without delays, loss or shaping for the scenarios
# that come after; rebuilding is what takes away every delayer, rule and queue.
plain_testbed() { tear_down; bring_up "$1" && warm_up; }

aggd_paths() { tb_path_delay 0 20 && tb_path_delay 1 40; }

# Real uplinks have round trips of tens of milliseconds, unequal ones; the testbed's
# veths have none, and a carrier's congestion control fills 2 x 50 Mbit/s far more
# easily without them.
sc_aggregation_delay() {
  delay_usable aggregation_delay || return 0
  local rc=0
  delayed_testbed "$1" aggd_paths && aggregate "$1" aggd || rc=1
  plain_testbed "$1" || rc=1
  return "$rc"
}

# The call's socket exists (connected to the call echo): its first datagram is on its way.
call_started() { [[ -n $(tb_cli ss -Hun dst "$TB_SRV4:9" 2>/dev/null) ]]; }

# call_field SUMMARY KEY...: a figure of `callprobe.py summary` (e.g. up p99_ms, or
# unpaused up p99_ms); "nan" where the call gave none (null there, null in our JSON too).
call_field() {
  python3 -c 'import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2:]:
    v = v[k]
print("nan" if v is None else v)' "$@" 2>/dev/null || echo nan
}

# Path 0 clean, path 1 slower and lossy (each way, in both delayers).
rt_paths() { tb_path_delay 0 20 && tb_path_delay 1 40 0 --loss 5; }

# Issue 20: a call (50 datagrams/s of 160 B, timed one way each direction by
# callprobe.py) beside a bulk flow of 150 Mbit/s into the two 50 Mbit/s paths; path 0
# clean at 20 ms, path 1 at 40 ms losing 5 % each way, path 0 dark for RT_DARK_S in the
# middle of the call.
sc_realtime() {
  delay_usable realtime || return 0
  local rc=0 bulk_f="$BENCH_DIR/rt-bulk.json" call_f="$BENCH_DIR/rt-call.json" bulk call
  local t_dark t_light rest sum
  delayed_testbed "$1" rt_paths || { plain_testbed "$1"; return 1; }
  tb_bg callecho srv taskset -c "$LOAD_CPU" python3 -u "$CALLPROBE" echo "$TB_SRV4" 9
  if ! tb_poll 5 grep -qs ready "$TB_DIR/callecho.log"; then
    log "$1/realtime: callprobe echo did not start"
    plain_testbed "$1"
    return 1
  fi
  tb_shape_uplinks 50mbit || rc=1
  if ((rc == 0)); then
    load --size 1200 --mbit 150 --duration "$(fcalc "$RT_CALL_S + 3")" --timeout 500 "$DEST4" >"$bulk_f" &
    bulk=$!
    # The host's pauses, one watcher per core: a virtual machine's core the hypervisor
    # takes away for 100 ms holds the call as no proxy does (seen on the bench's host,
    # on one core at a time, every second or two under this load).
    local cpu watchers=()
    for ((cpu = 0; cpu < $(nproc); cpu++)); do
      taskset -c "$cpu" python3 "$CALLPROBE" pauses "$(fcalc "$RT_CALL_S + 6")" \
        >"$BENCH_DIR/rt-pauses-$cpu.json" 2>>"$BENCH_DIR/load.log" &
      watchers+=($!)
    done
    sleep 1  # the bulk flow has filled the paths when the call starts, as in under_load
    tb_cli taskset -c "$LOAD_CPU" python3 "$CALLPROBE" call "$TB_SRV4" 9 50 160 "$RT_CALL_S" 3 \
      >"$call_f" 2>>"$BENCH_DIR/load.log" &
    call=$!
    # From the call's first datagram, not its launch: python starts slowly on a busy load
    # core (over a second, seen), which would leave little of the call before the outage.
    tb_poll 10 call_started || log "$1/realtime: the call's socket did not show up"
    sleep "$RT_DARK_AT_S"
    t_dark=$EPOCHREALTIME
    tb_path_dark 0 || rc=1
    # Going dark is confirmed through the delayers' logs, which can take a second on a
    # busy host: the outage lasts RT_DARK_S from the signal, not from the confirmation.
    rest=$(fcalc "$RT_DARK_S - (${EPOCHREALTIME/,/.} - ${t_dark/,/.})")
    [[ $rest == -* ]] || sleep "$rest"
    t_light=$EPOCHREALTIME
    tb_path_light 0 || rc=1
    wait "$call" || rc=1
    wait "$bulk"
    wait "${watchers[@]}"
    python3 -c 'import json, sys
print(json.dumps(sorted(p for f in sys.argv[1:] for p in json.load(open(f)))))' \
      "$BENCH_DIR"/rt-pauses-*.json >"$BENCH_DIR/rt-pauses.json" 2>>"$BENCH_DIR/load.log" ||
      echo '[]' >"$BENCH_DIR/rt-pauses.json"
    sum=$(python3 "$CALLPROBE" summary "$call_f" "$t_dark" "$t_light" 150 \
      "$BENCH_DIR/rt-pauses.json" 2>>"$BENCH_DIR/load.log")
    # BENCH_CALL_DIR: keep each call's datagram times (and the outage's) for a post-mortem.
    if [[ -n ${BENCH_CALL_DIR:-} ]]; then
      mkdir -p "$BENCH_CALL_DIR" &&
        python3 -c 'import json, sys
d = json.load(open(sys.argv[1])); d["dark"], d["light"] = float(sys.argv[2]), float(sys.argv[3])
d["pauses"] = json.load(open(sys.argv[5]))
json.dump(d, open(sys.argv[4], "w"))' "$call_f" "$t_dark" "$t_light" \
          "$BENCH_CALL_DIR/$1-$(date +%H%M%S).json" "$BENCH_DIR/rt-pauses.json" ||
        log "$1/realtime: call not kept"
    fi
    log "$1/realtime: call $sum"
    local k
    for k in up down; do
      RES[$1.rt_late_${k}_pct]=$(call_field "$sum" "$k" late_pct)
      RES[$1.rt_${k}_p99_ms]=$(call_field "$sum" "$k" p99_ms)
      RES[$1.rt_outage_${k}_p99_ms]=$(call_field "$sum" "$k" p99_ms_from_dark)
      RES[$1.rt_outage_detected_${k}_p99_ms]=$(call_field "$sum" "$k" p99_ms_outage)
      # The same without the datagrams a pause of the host may have held.
      RES[$1.rt_late_${k}_pct_unpaused]=$(call_field "$sum" unpaused "$k" late_pct)
      RES[$1.rt_${k}_p99_ms_unpaused]=$(call_field "$sum" unpaused "$k" p99_ms)
      RES[$1.rt_outage_detected_${k}_p99_ms_unpaused]=$(call_field "$sum" unpaused "$k" p99_ms_outage)
    done
    RES[$1.rt_host_pauses]=$(call_field "$sum" pauses)
    RES[$1.rt_bulk_goodput_mbit]=$(jget "$(cat "$bulk_f")" goodput_mbit)
    # The redundancy's cost, per datagram of the call, each way (the CPE's upstream, the
    # concentrator's downstream): the copies beyond the first of the call's own binding
    # (the issue's bound: its own rate per extra path), and of every flow, less those a
    # dark carrier held until the sojourn bound dropped them (a bulk flow's start is light
    # too, and copied).
    if [[ $1 == mpudp-copies ]]; then
      for k in cpe conc; do
        "tb_$k" "$CTL" -s "$TB_DIR/$k.sock" status --json >"$BENCH_DIR/rt-$k-status.json" 2>/dev/null
        "tb_$k" "$CTL" -s "$TB_DIR/$k.sock" bindings --json >"$BENCH_DIR/rt-$k-bindings.json" 2>/dev/null
        RES[$1.rt_${k}_duplicates_per_call_dgram]=$(python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))["stats"]
extra = s["counters"]["duplicates_tx"] - s["drops"].get("copy_queue_sojourn", 0)
print(round(extra / (50 * float(sys.argv[2])), 3))' "$BENCH_DIR/rt-$k-status.json" "$RT_CALL_S" 2>/dev/null || echo nan)
        RES[$1.rt_${k}_call_duplicates_per_dgram]=$(python3 -c 'import json, sys
call = [b for b in json.load(open(sys.argv[1]))["bindings"] if sys.argv[3] in b["remotes"]]
print(round(sum(b["duplicates_tx"] for b in call) / (50 * float(sys.argv[2])), 3))' \
          "$BENCH_DIR/rt-$k-bindings.json" "$RT_CALL_S" "$TB_SRV4:9" 2>/dev/null || echo nan)
      done
    fi
  fi
  plain_testbed "$1" || rc=1
  return "$rc"
}

# Where the aggregation run's lost datagrams went: each daemon's drops by reason during the
# scenario (the CPE drops the offered excess on the way up; what the concentrator drops is
# echoes lost on the way down). `agg_drops SYSTEM PREFIX before` takes the counts the
# scenarios before left; `agg_drops SYSTEM PREFIX` reports the difference as
# PREFIX_cpe_dropped and PREFIX_conc_dropped.
declare -A AGG_DROPS0=()
agg_drops() {  # SYSTEM PREFIX [before]
  local side reasons
  for side in cpe conc; do
    "tb_$side" "$CTL" -s "$TB_DIR/$side.sock" status --json >"$BENCH_DIR/$side-status.json" 2>&1
    if [[ ${3:-} == before ]]; then
      AGG_DROPS0[$side]=$(python3 -c 'import json,sys
print(json.dumps(json.load(open(sys.argv[1]))["stats"]["drops"]))' \
        "$BENCH_DIR/$side-status.json" 2>/dev/null) || AGG_DROPS0[$side]='{}'
      continue
    fi
    reasons=$(python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))["stats"]["drops"]
d0=json.loads(sys.argv[2])
d={k: v - d0.get(k, 0) for k, v in d.items()}
print(sum(d.values()), " ".join(f"{k}={v}" for k, v in sorted(d.items()) if v))' \
      "$BENCH_DIR/$side-status.json" "${AGG_DROPS0[$side]:-{\}}" 2>/dev/null) || reasons=nan
    RES[$1.${2}_${side}_dropped]=${reasons%% *}
    log "$1/$([[ $2 == aggd ]] && echo aggregation_delay || echo aggregation): $side drops: ${reasons#* }"
  done
}

# Issue 20's churn: a page load's worth of new QUIC-like flows whose servers answer at
# once with 1200 B each, 256 waiting at a time; every reply must come back (the tunnel's
# queues drop by waiting time, not at a byte cap a burst overruns).
sc_burst_churn() {
  local out
  out=$(load --new-flows "$CHURN_N" --concurrency 256 --size 1200 --timeout 3000 "$DEST4")
  RES[$1.burst_churn_flows_per_s]=$(jget "$out" flows_per_s)
  RES[$1.burst_churn_failed]=$(jget "$out" failed)
}

sc_churn() {
  local out
  out=$(load --new-flows "$CHURN_N" --concurrency 32 --size 64 --timeout 1000 "$DEST4")
  RES[$1.churn_flows_per_s]=$(jget "$out" flows_per_s)
  RES[$1.churn_failed]=$(jget "$out" failed)
  RES[$1.churn_first_reply_p50_us]=$(jget "$out" first_reply_us.p50)
  RES[$1.churn_first_reply_p99_us]=$(jget "$out" first_reply_us.p99)
  [[ $1 == direct ]] && return 0
  RES[$1.pss_after_churn_kib]=$(( $(ns_pss_kib cpe) + $(ns_pss_kib conc) ))
  RES[$1.procs_after_churn]=$(proxy_pids | wc -l)
  # mpudp-mux-log: the lines written so far (a binding's open; its close comes at expiry),
  # after the second in which the daemon flushes its buffer.
  if [[ -f $TB_DIR/bindings.log ]]; then
    sleep 1.2
    RES[$1.binding_log_lines]=$(wc -l <"$TB_DIR/bindings.log")
  fi
  return 0
}

flood_bindings() {  # FLOOD_N new flows from two client addresses (added by sc_rss_bindings)
  tb_cli taskset -c "$LOAD_CPU" "$FLOOD" --src 198.18.0.2,198.18.0.3 --flows "$FLOOD_N" \
    --pps "$FLOOD_PPS" --size 32 "$DEST4" >>"$BENCH_DIR/load.log" 2>&1
}

binding_count() {  # STATUS_JSON: the binding count in an `mpudpctl status --json` answer
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bindings"]["count"])' \
    "$1" 2>/dev/null || echo 0
}

sc_rss_bindings() {
  [[ $1 == mpudp-mux ]] || return 0
  local c0 k0 c1 k1 nb
  ip -n "$TB_NS_CLI" addr add 198.18.0.3/24 dev lan0 2>/dev/null
  c0=$(ns_rss_kib cpe); k0=$(ns_rss_kib conc)
  flood_bindings
  sleep 1
  c1=$(ns_rss_kib cpe); k1=$(ns_rss_kib conc)
  tb_cpe "$CTL" -s "$TB_DIR/cpe.sock" status --json >"$BENCH_DIR/cpe-status.json" 2>&1
  tb_conc "$CTL" -s "$TB_DIR/conc.sock" status --json >"$BENCH_DIR/conc-status.json" 2>&1
  local nk
  nb=$(binding_count "$BENCH_DIR/cpe-status.json")
  nk=$(binding_count "$BENCH_DIR/conc-status.json")
  # The concentrator holds one UDP socket per binding: below 100 000 bindings when the
  # open-file hard limit is lower (binding_refused), and the CPE follows it (RESET).
  RES[$1.nofile_hard_limit]=$(ulimit -Hn)
  RES[$1.bindings_cpe]=$nb
  RES[$1.bindings_conc]=$nk
  RES[$1.rss_cpe_kib]=$c1
  RES[$1.rss_conc_kib]=$k1
  ((nb > 0)) && RES[$1.rss_per_binding_cpe_b]=$(fcalc "($c1 - $c0) * 1024 / $nb")
  ((nk > 0)) && RES[$1.rss_per_binding_conc_b]=$(fcalc "($k1 - $k0) * 1024 / $nk")
  # A concentrator without a descriptor budget (before it had one) could not accept the
  # control connection at its open-file limit.
  ((nk > 0)) || RES[$1.bindings_conc]='"ctl-failed"'
  rss_cpe_alone "$1"
  # Back to the real pair for whatever scenario comes next.
  tear_down
  bring_up "$1" && warm_up
}

# The CPE holds no socket per binding, so the open-file limit that stops the real
# concentrator need not stop it: the same flood against tools/wiresink, a stand-in
# concentrator that answers the handshake and keeps nothing, gives the CPE's memory per
# binding at the full count.
rss_cpe_alone() {
  local c0 c1 nb
  tb_stop cpe
  tb_stop conc
  tb_bg sink conc taskset -c "$PROXY_CPU" "$SINK" "198.18.2.2:$TB_CONC_PORT"
  tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || { tail "$TB_DIR/sink.log" >&2; return 1; }
  sed -e 's/^auth: .*/auth: none/' -e "s#cpe.sock#cpe-alone.sock#" "$TB_DIR/cpe.yaml" \
    >"$TB_DIR/cpe-alone.yaml"
  set_encryption "$TB_DIR/cpe-alone.yaml" none || return 1  # wiresink speaks protocol v1
  tb_bg cpe-alone cpe taskset -c "$PROXY_CPU" "$TB_DAEMON" -c "$TB_DIR/cpe-alone.yaml"
  tb_wait_listen cpe udp "$TB_TPROXY_PORT" 1 60 || { tail "$TB_DIR/cpe-alone.log" >&2; return 1; }
  tb_wait_log cpe-alone "tunnel up" 10 || return 1
  c0=$(ns_rss_kib cpe)
  flood_bindings
  sleep 1
  c1=$(ns_rss_kib cpe)
  tb_cpe "$CTL" -s "$TB_DIR/cpe-alone.sock" status --json >"$BENCH_DIR/cpe-alone-status.json" 2>&1
  nb=$(binding_count "$BENCH_DIR/cpe-alone-status.json")
  RES[$1.bindings_cpe_alone]=$nb
  ((nb > 0)) && RES[$1.rss_per_binding_cpe_alone_b]=$(fcalc "($c1 - $c0) * 1024 / $nb")
  tb_stop cpe-alone
  tb_stop sink
  log "$1: CPE alone against wiresink: $nb bindings, RSS $c0 -> $c1 KiB; $(tail -n1 "$TB_DIR/sink.log")"
}

# Instructions per datagram, one daemon under callgrind at a time (the other at full
# speed, so that each count is of its own daemon under the tunnel's usual pace): zeroed once
# it is up, CG_N echoed datagrams, then a dump. ir_per_datagram: the CPE's Ir per echoed
# datagram (each crosses it twice: in from the LAN, back from the tunnel);
# conc_ir_per_datagram: the concentrators' Ir (all instances) per datagram relayed (each
# echoed one crosses them twice), the per-core cost figure of docs/SCALE.md.
cg_side() {  # SYS MODE ENC SIDE(cpe|conc): sets CG_IR and CG_DGRAMS (not in a subshell:
  # the testbed it builds is the run's)
  local side=$4 wrap
  tear_down
  bench_setup || return 1
  trap bench_exit EXIT
  start_echo || return 1
  wrap="valgrind --tool=callgrind --callgrind-out-file=$TB_DIR/cg-$side.out.%p"
  if [[ $side == cpe ]]; then
    # shellcheck disable=SC2086
    start_mpudp "$2" "$3" $wrap || return 1
  else
    CONC_WRAPPER=$wrap start_mpudp "$2" "$3" || return 1
  fi
  warm_up || return 1
  # The recorded PIDs are valgrind's own (ip netns exec and taskset exec it); vgdb reaches
  # them from inside their namespace. One dump each: every daemon then has one file, the
  # counts since the zeroing.
  local p pids="${TB_PIDS[cpe]}"
  [[ $side == conc ]] && pids="${TB_PIDS[conc]} ${TB_PIDS[conc2]:-}"
  for p in $pids; do tb_ns_exec "$side" callgrind_control -z "$p" >/dev/null 2>&1; done
  local out
  out=$(load --size 1200 --rate "$CG_PPS" --duration "$(fcalc "$CG_N / $CG_PPS")" --timeout 2000 "$DEST4")
  for p in $pids; do tb_ns_exec "$side" callgrind_control -d "$p" >/dev/null 2>&1; done
  sleep 0.5
  CG_IR=$(cat "$TB_DIR"/cg-"$side".out.* 2>/dev/null | awk '/^summary:|^totals:/ { v += $2 } END { print v + 0 }')
  CG_DGRAMS=$(jget "$out" echoed)
}

sc_callgrind() {
  [[ $1 == mpudp-* ]] || return 0
  command -v valgrind >/dev/null || { RES[$1.ir_per_datagram]=\"no-valgrind\"; return 0; }
  local mode=multiplexed enc=tls inst=1
  [[ $1 == mpudp-pb* ]] && mode=per-binding
  [[ $1 == *-clear ]] && enc=none
  [[ $1 == *-2i ]] && inst=2
  CONC_INSTANCES=$inst cg_side "$1" "$mode" "$enc" cpe || return 1
  RES[$1.ir_per_datagram]=$(fcalc "$CG_IR / (${CG_DGRAMS:-0} > 0 ? $CG_DGRAMS : 1)")
  RES[$1.callgrind_datagrams]=${CG_DGRAMS:-0}
  CONC_INSTANCES=$inst cg_side "$1" "$mode" "$enc" conc || return 1
  RES[$1.conc_ir_per_datagram]=$(fcalc "$CG_IR / (2 * (${CG_DGRAMS:-0} > 0 ? $CG_DGRAMS : 1))")
}

# How busy the whole machine is over one second while the system under test idles: the
# other work on a shared host, which every figure of that system competes with. Sets
# HOST_BUSY (% of all cores, at nice 0 or below: competes on equal terms) and HOST_NICE
# (% in niced processes, e.g. builds: yields most of its share to the bench).
host_busy() {
  local a b
  a=$(awk '/^cpu / { print $2 + $4 + $7 + $8 + $9, $3, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
  sleep 1
  b=$(awk '/^cpu / { print $2 + $4 + $7 + $8 + $9, $3, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
  read -r a1 a2 a3 <<<"$a"
  read -r b1 b2 b3 <<<"$b"
  HOST_BUSY=$(fcalc "100 * ($b1 - $a1) / ($b3 - $a3 + 1e-9)")
  HOST_NICE=$(fcalc "100 * ($b2 - $a2) / ($b3 - $a3 + 1e-9)")
}

# ---------------------------------------------------------------------------------------
# Main loop

# tls_in_use SYSTEM: an mpudp system that should encrypt does. The daemons between the
# TLS configuration and its wiring (main before "tunnel: TLS 1.3 wired") accepted
# `encryption: tls` and ran in clear; the wired concentrator names each session's TLS
# identity in `mpudpctl status`, the earlier ones have no such field.
tls_in_use() {
  [[ $1 == mpudp-* && $1 != *-clear ]] || return 0
  # With several instances, the warm-up's sessions may all be another's than conc's.
  local sock
  for sock in "$TB_DIR"/conc*.sock; do
    tb_conc "$CTL" -s "$sock" status --json >"$BENCH_DIR/conc-tls-status.json" 2>&1
    grep -q '"identity"' "$BENCH_DIR/conc-tls-status.json" && return 0
  done
  return 1
}

# run_system SYSTEM: a fresh testbed, every scenario, torn down again. A system that does
# not start or echo gets a NOTE and is skipped from then on.
run_system() {
  local sys=$1 rc sc t
  bring_up "$sys"
  rc=$?
  if ((rc != 0)); then
    [[ -n ${NOTE[$sys]:-} ]] || NOTE[$sys]="did not start (rc $rc); see bench log"
    log "$sys: ${NOTE[$sys]}"
    tear_down
    return
  fi
  if ! warm_up; then
    NOTE[$sys]="no echo through it"
    log "$sys: ${NOTE[$sys]}"
    tear_down
    return
  fi
  if ! tls_in_use "$sys"; then
    NOTE[$sys]="encryption: tls accepted, but no session has a TLS identity (a daemon from before the TLS wiring runs in clear)"
    log "$sys: ${NOTE[$sys]}"
    tear_down
    return
  fi
  host_busy
  RES[$sys.host_busy_pct]=$HOST_BUSY
  RES[$sys.host_nice_pct]=$HOST_NICE
  log "$sys: host busy $HOST_BUSY % (+ $HOST_NICE % niced) before its scenarios (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  for sc in "${SCENARIOS[@]}"; do
    [[ $sc == callgrind ]] && continue  # needs its own daemon: runs last
    t=$SECONDS
    "sc_$sc" "$sys" || log "$sys/$sc failed"
    log "$sys/$sc: $((SECONDS - t)) s"
  done
  if [[ $sys == v2ray* ]]; then RES[$sys.subflow_paths]="\"$(tb_subflow_paths)\""; fi
  if has_scenario callgrind; then
    t=$SECONDS
    sc_callgrind "$sys" || log "$sys/callgrind failed"
    log "$sys/callgrind: $((SECONDS - t)) s"
  fi
  tear_down
}

# Rounds: each round runs every system once, every other round in reverse order, so that
# a drift in the host's other work weighs on all systems alike. Each metric is the median
# of its rounds (a value that is not a number: the last round's); the JSON keeps them all.
declare -A ROUND_VALS=()  # "system.metric" -> the rounds' values, one a line
keep_round() {  # SYSTEM: move its RES entries into ROUND_VALS
  local k
  for k in "${!RES[@]}"; do
    [[ $k == "$1".* ]] || continue
    ROUND_VALS[$k]+="${RES[$k]}"$'\n'
    unset 'RES[$k]'
  done
}
take_medians() {
  local k
  for k in "${!ROUND_VALS[@]}"; do
    RES[$k]=$(printf '%s' "${ROUND_VALS[$k]}" | sort -g | awk '
      { v[NR] = $0; if ($0 !~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/) text = 1; last = $0 }
      END { if (text) print last; else if (NR % 2) print v[(NR + 1) / 2];
            else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  done
}

trap bench_exit EXIT
T_START=$SECONDS
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
for ((round = 1; round <= ROUNDS; round++)); do
  order=("${RUN_SYSTEMS[@]}")
  if ((round % 2 == 0)); then
    order=()
    for ((i = ${#RUN_SYSTEMS[@]} - 1; i >= 0; i--)); do order+=("${RUN_SYSTEMS[i]}"); done
  fi
  for sys in "${order[@]}"; do
    [[ -n ${NOTE[$sys]:-} ]] && continue
    log "=== $sys (round $round of $ROUNDS)"
    run_system "$sys"
    keep_round "$sys"
  done
done
take_medians
log "total $((SECONDS - T_START)) s"
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------
# Report: the table, the ratios with their targets, JSON.

metrics=(host_busy_pct host_nice_pct capacity_mbit capacity_pps cpu_s_per_gbit pps64 idle_rtt4_p50_us idle_rtt4_p99_us
  idle_rtt6_p50_us idle_rtt6_p99_us load_rtt_p50_us load_rtt_p99_us load_probe_loss_pct
  load_bulk_goodput_mbit prio_rtt_p50_us prio_rtt_p99_us prio_probe_loss_pct
  prio_bulk_goodput_mbit agg_goodput_mbit agg_steady_goodput_mbit agg_link_up_mbit
  agg_link_down_mbit agg_loss_pct agg_cpe_dropped agg_conc_dropped agg_reordered agg_share_up0_pct agg_share_up1_pct subflows subflow_paths
  aggd_goodput_mbit aggd_steady_goodput_mbit aggd_link_up_mbit aggd_link_down_mbit aggd_loss_pct
  aggd_cpe_dropped aggd_conc_dropped aggd_reordered aggd_share_up0_pct aggd_share_up1_pct churn_flows_per_s churn_failed
  burst_churn_flows_per_s burst_churn_failed churn_first_reply_p50_us churn_first_reply_p99_us pss_after_churn_kib procs_after_churn bindings_cpe
  bindings_conc nofile_hard_limit rss_per_binding_cpe_b rss_per_binding_conc_b bindings_cpe_alone
  rss_per_binding_cpe_alone_b ir_per_datagram conc_cpu_us_per_dgram conc_ir_per_datagram bindings_per_instance binding_log_lines
  rt_late_up_pct rt_late_down_pct rt_up_p99_ms rt_down_p99_ms rt_outage_up_p99_ms rt_outage_down_p99_ms
  rt_outage_detected_up_p99_ms rt_outage_detected_down_p99_ms rt_host_pauses rt_late_up_pct_unpaused
  rt_late_down_pct_unpaused rt_up_p99_ms_unpaused rt_down_p99_ms_unpaused
  rt_outage_detected_up_p99_ms_unpaused rt_outage_detected_down_p99_ms_unpaused rt_bulk_goodput_mbit
  rt_cpe_duplicates_per_call_dgram rt_conc_duplicates_per_call_dgram rt_cpe_call_duplicates_per_dgram
  rt_conc_call_duplicates_per_dgram)
mode_label=full
((QUICK)) && mode_label="QUICK (short runs; not reference figures)"
((ROUNDS > 1)) && mode_label+=", medians of $ROUNDS rounds"
{
  echo
  echo "mpudp benchmark — $mode_label — $(date -u +%FT%TZ) — $(uname -r) — TCP congestion control ${BENCH_CC:-$(sysctl -n net.ipv4.tcp_congestion_control) (host default)}"
  echo "$(nproc) cores; load average at start $LOADAVG_START, at end $LOADAVG_END; commit $(git -C "$BENCH_REPO" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)"
  printf '%-26s' metric
  for sys in "${RUN_SYSTEMS[@]}"; do printf '%17s' "$sys"; done
  echo
  for m in "${metrics[@]}"; do
    line=$(printf '%-26s' "$m")
    any=0
    for sys in "${RUN_SYSTEMS[@]}"; do
      v=${RES[$sys.$m]:--}
      [[ $v != - ]] && any=1
      [[ -n ${NOTE[$sys]:-} ]] && v=skipped
      line+=$(printf '%17s' "${v//\"/}")
    done
    ((any)) && echo "$line"
  done
  for sys in "${RUN_SYSTEMS[@]}"; do
    [[ -n ${NOTE[$sys]:-} ]] && echo "SKIPPED $sys: ${NOTE[$sys]}"
  done
} | tee "$BENCH_DIR/table.txt"

# ratio NAME NUM_SYS NUM_METRIC DEN_SYS DEN_METRIC OP THRESHOLD (OP "info": no target).
# DEN_SYS "=" makes DEN_METRIC the denominator itself (an absolute target). The JSON entry
# carries the issue whose targets are being printed (RATIO_ISSUE).
declare -a RATIOS=()
RATIO_ISSUE=7
RES[paths.sum_mbit]=100  # tb_shape_uplinks 50mbit on each of the two paths
ratio() {
  local a=${RES[$2.$3]:-} b r verdict
  if [[ $4 == = ]]; then b=$5; else b=${RES[$4.$5]:-}; fi
  local tag="\"issue\":$RATIO_ISSUE,\"name\":\"$1\""
  if [[ -z $a || -z $b || $a == nan || $b == nan || $b == 0 || $a == fail || $b == fail ]]; then
    printf '%-52s %10s   target %s %s\n' "$1" n/a "${6/info/-}" "${7:-}"
    RATIOS+=("{$tag,\"value\":null,\"target\":\"$6 ${7:-}\"}")
    return
  fi
  r=$(fcalc "$a / $b")
  if [[ $6 == info ]]; then
    printf '%-52s %10s   (no target)\n' "$1" "$r"
    RATIOS+=("{$tag,\"value\":$r}")
    return
  fi
  verdict=$(fcalc "($r $6 $7) ? 1 : 0" | sed 's/1/met/; s/0/NOT met/')
  printf '%-52s %10s   target %-10s %s\n' "$1" "$r" "$6 $7" "$verdict"
  RATIOS+=("{$tag,\"value\":$r,\"target\":\"$6 $7\",\"met\":$([[ $verdict == met ]] && echo true || echo false)}")
}
{
  echo
  echo "ratios (computed in this run); issue 7 (mpudp as it ships: encryption tls), v2ray without encryption:"
  for m in mpudp-mux mpudp-pb; do
    want_system "$m" || continue
    ratio "capacity $m / direct" "$m" capacity_mbit direct capacity_mbit ">=" 0.6
    ratio "capacity $m / v2ray" "$m" capacity_mbit v2ray capacity_mbit ">=" 2
    ratio "capacity $m / ss" "$m" capacity_mbit ss capacity_mbit ">=" 4
    ratio "aggregation $m / sum of path rates" "$m" agg_steady_goodput_mbit paths sum_mbit ">=" 0.9
    ratio "load p99 $m / v2ray" "$m" load_rtt_p99_us v2ray load_rtt_p99_us "<=" 0.2
    ratio "load p99, priority queues, $m / v2ray" "$m" prio_rtt_p99_us v2ray prio_rtt_p99_us "<=" 0.2
    ratio "churn flows/s $m / v2ray" "$m" churn_flows_per_s v2ray churn_flows_per_s ">=" 10
    ratio "idle p50 $m / v2ray" "$m" idle_rtt4_p50_us v2ray idle_rtt4_p50_us "<=" 0.6
    ratio "idle p50 $m / ss" "$m" idle_rtt4_p50_us ss idle_rtt4_p50_us "<=" 0.6
    ratio "idle p50 $m / direct" "$m" idle_rtt4_p50_us direct idle_rtt4_p50_us info
    ratio "CPU s/Gbit $m / v2ray" "$m" cpu_s_per_gbit v2ray cpu_s_per_gbit "<=" 0.5
    ratio "memory (PSS) after churn $m / v2ray" "$m" pss_after_churn_kib v2ray pss_after_churn_kib "<=" 0.1
  done
  echo "absolute targets: churn failures 0 and first reply p50 < 2000 us; RSS per binding <= 1024 B at 100 000 bindings"
  # Issue 18: what encryption costs, against the peers that encrypt too (ss: AEAD
  # chacha20-ietf-poly1305 per datagram; v2ray-tls: VLESS over TLS 1.3).
  RATIO_ISSUE=18
  echo
  echo "issue 18 (encryption: mpudp TLS against its own cleartext and the encrypting peers):"
  ratio "capacity mpudp-mux (tls) / mpudp-mux-clear" mpudp-mux capacity_mbit mpudp-mux-clear capacity_mbit ">=" 0.85
  ratio "capacity mpudp-mux (tls) / ss (AEAD)" mpudp-mux capacity_mbit ss capacity_mbit ">=" 4
  ratio "capacity mpudp-mux (tls) / v2ray-tls" mpudp-mux capacity_mbit v2ray-tls capacity_mbit ">=" 4
  ratio "CPU s/Gbit mpudp-mux (tls) / ss (AEAD)" mpudp-mux cpu_s_per_gbit ss cpu_s_per_gbit "<=" 0.3
  ratio "CPU s/Gbit mpudp-mux (tls) / v2ray-tls" mpudp-mux cpu_s_per_gbit v2ray-tls cpu_s_per_gbit info
  ratio "CPU s/Gbit mpudp-mux (tls) / mpudp-mux-clear" mpudp-mux cpu_s_per_gbit mpudp-mux-clear cpu_s_per_gbit info
  ratio "churn first reply p50 mpudp-mux (tls) / 2000 us" mpudp-mux churn_first_reply_p50_us = 2000 "<" 1
  ratio "churn first reply p50 mpudp-mux (tls) / -clear" mpudp-mux churn_first_reply_p50_us mpudp-mux-clear churn_first_reply_p50_us info
  ratio "churn first reply p50 mpudp-pb (tls) / -clear" mpudp-pb churn_first_reply_p50_us mpudp-pb-clear churn_first_reply_p50_us "<" 2
  ratio "churn first reply p99 mpudp-pb (tls) / -clear" mpudp-pb churn_first_reply_p99_us mpudp-pb-clear churn_first_reply_p99_us info
  ratio "churn flows/s mpudp-pb (tls) / -clear" mpudp-pb churn_flows_per_s mpudp-pb-clear churn_flows_per_s info
  ratio "capacity mpudp-pb (tls) / mpudp-pb-clear" mpudp-pb capacity_mbit mpudp-pb-clear capacity_mbit info
  ratio "capacity v2ray-tls / v2ray" v2ray-tls capacity_mbit v2ray capacity_mbit info
  # Issue 19: a second concentrator instance on the same core must not cost capacity.
  RATIO_ISSUE=19
  echo
  echo "issue 19 (instances: two concentrators sharing the address, on the same core):"
  ratio "capacity mpudp-pb-2i / mpudp-pb" mpudp-pb-2i capacity_mbit mpudp-pb capacity_mbit ">=" 0.95
  ratio "conc CPU us/datagram mpudp-pb-2i / mpudp-pb" mpudp-pb-2i conc_cpu_us_per_dgram mpudp-pb conc_cpu_us_per_dgram info
  ratio "capacity mpudp-mux-log / mpudp-mux (binding log on/off)" mpudp-mux-log capacity_mbit mpudp-mux capacity_mbit ">=" 0.95
  ratio "churn flows/s mpudp-mux-log / mpudp-mux" mpudp-mux-log churn_flows_per_s mpudp-mux churn_flows_per_s ">=" 0.95
  # Issue 20: the call across a lossy and a failing uplink, with and without copies.
  RATIO_ISSUE=20
  echo
  echo "issue 20 (realtime: a call beside 150 Mbit/s of bulk, path 1 lossy, path 0 dark 3 s):"
  for k in up down; do
    ratio "call late $k % mpudp-copies / 0.1 %" mpudp-copies rt_late_${k}_pct = 0.1 "<=" 1
    ratio "call late $k % mpudp-copies / mpudp-mux" mpudp-copies rt_late_${k}_pct mpudp-mux rt_late_${k}_pct info
  done
  ratio "bulk goodput mpudp-copies / mpudp-mux" mpudp-copies rt_bulk_goodput_mbit mpudp-mux rt_bulk_goodput_mbit ">=" 0.97
  for k in up down; do
    ratio "call p99 $k both paths mpudp-copies / (20 + 10 ms)" mpudp-copies rt_${k}_p99_ms = 30 "<=" 1
    ratio "call p99 $k outage after detection mpudp-copies / (40 + 20 ms)" mpudp-copies rt_outage_detected_${k}_p99_ms = 60 "<=" 1
  done
  # The host's pauses (rt_host_pauses) hold the call whatever carries it: the same bounds
  # without the datagrams one may have held.
  for k in up down; do
    ratio "unpaused: call late $k % mpudp-copies / 0.1 %" mpudp-copies rt_late_${k}_pct_unpaused = 0.1 "<=" 1
    ratio "unpaused: call p99 $k both paths / (20 + 10 ms)" mpudp-copies rt_${k}_p99_ms_unpaused = 30 "<=" 1
    ratio "unpaused: call p99 $k outage after detection / 60 ms" mpudp-copies rt_outage_detected_${k}_p99_ms_unpaused = 60 "<=" 1
  done
  ratio "call's own copies per datagram, cpe / (paths - 1)" mpudp-copies rt_cpe_call_duplicates_per_dgram = 1 "<=" 1
  ratio "call's own copies per datagram, conc / (paths - 1)" mpudp-copies rt_conc_call_duplicates_per_dgram = 1 "<=" 1
  ratio "all flows' copies per call datagram, cpe / (paths - 1)" mpudp-copies rt_cpe_duplicates_per_call_dgram = 1 info
  ratio "all flows' copies per call datagram, conc / (paths - 1)" mpudp-copies rt_conc_duplicates_per_call_dgram = 1 info
  for m in mpudp-mux mpudp-copies; do
    ratio "burst churn flows/s $m / direct" "$m" burst_churn_flows_per_s direct burst_churn_flows_per_s ">=" 0.5
  done
  echo "absolute target (issue 20): burst churn failures 0"
  echo "each system ran at its own time: host_busy_pct (and host_nice_pct) say how busy other work kept the machine when it started"
} >"$BENCH_DIR/ratios.txt"
cat "$BENCH_DIR/ratios.txt"

{
  printf '{"quick":%s,"rounds":%s,"date":"%s","kernel":"%s","congestion_control":"%s","cores":%s,"commit":"%s","loadavg_start":"%s","loadavg_end":"%s","systems":{' \
    "$([[ $QUICK == 1 ]] && echo true || echo false)" "$ROUNDS" "$(date -u +%FT%TZ)" "$(uname -r)" \
    "${BENCH_CC:-$(sysctl -n net.ipv4.tcp_congestion_control)}" "$(nproc)" \
    "$(git -C "$BENCH_REPO" describe --always --dirty --abbrev=40 2>/dev/null || echo unknown)" "$LOADAVG_START" "$LOADAVG_END"
  first=1
  for sys in "${RUN_SYSTEMS[@]}"; do
    ((first)) || printf ','
    first=0
    printf '"%s":{' "$sys"
    if [[ -n ${NOTE[$sys]:-} ]]; then
      printf '"skipped":"%s"' "${NOTE[$sys]}"
    else
      f2=1
      for m in "${metrics[@]}"; do
        v=${RES[$sys.$m]:-}
        [[ -n $v ]] || continue
        [[ $v == nan || $v == fail ]] && v=null
        ((f2)) || printf ','
        f2=0
        printf '"%s":%s' "$m" "$v"
      done
      if ((ROUNDS > 1)); then
        printf ',"rounds":{'
        f2=1
        for m in "${metrics[@]}"; do
          v=${ROUND_VALS[$sys.$m]:-}
          [[ -n $v ]] || continue
          ((f2)) || printf ','
          f2=0
          printf '"%s":[%s]' "$m" "$(printf '%s' "$v" | sed 's/^nan$\|^fail$/null/' | paste -sd,)"
        done
        printf '}'
      fi
    fi
    printf '}'
  done
  printf '},"ratios":['
  (IFS=,; printf '%s' "${RATIOS[*]}")
  printf ']}\n'
} >"$JSON_OUT"
log "JSON written to $JSON_OUT"
