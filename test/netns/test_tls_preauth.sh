#!/usr/bin/env bash
# Nothing to gain before authentication (issue 18, item 5; docs/HARDENING.md,
# "Before authentication"). From a namespace of its own on the concentrator's WAN side, a
# flooder holds IDLE connections that never send a byte and BYTES connections that send 5
# bytes (a TLS record header announcing 16 KiB that never comes) and then stay silent,
# from 16 IPv4 /24s and 8 IPv6 /56s (half of them from one /24), reconnecting each one the
# concentrator closes, for FLOOD_S seconds. Meanwhile the real CPE starts:
#   - it connects and a UDP flow crosses the tunnel (probe) while the flood goes on;
#   - every flood connection is closed by the concentrator within the handshake deadline
#     (concentrator.handshake_timeout, 3 s) plus a second, none is left open;
#   - both caps were reached (preauth_evicted_total, preauth_evicted_prefix) and the
#     deadline closed the rest (handshake_timeouts);
#   - the concentrator's RSS (VmRSS, sampled through the flood) stays under RSS_BOUND_KB,
#     the bound documented in docs/HARDENING.md.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built
command -v python3 >/dev/null || { echo "[tb] SKIP: python3 is not installed" >&2; exit 4; }
CTL=$MPUDP_BUILD/daemon/mpudpctl
FLOOD=$TB_REPO/test/netns/connflood.py
IDLE=${IDLE:-1000} BYTES=${BYTES:-1000} FLOOD_S=${FLOOD_S:-12}
# What the 5-byte connections send: a TLS handshake record header announcing 512 bytes, a
# ClientHello's usual size (connflood.py): the concentrator waits for the rest, until the
# deadline. (One announcing more than 4 KiB is closed at once: TlsSession::kMaxFirstRecord.)
# A clear-text (v1) concentrator closes those at once as garbage; PAYLOAD=0100ffff4d (a v1
# HELLO header announcing 64 KiB, and one byte of it) is what it holds instead.
PAYLOAD=${PAYLOAD:-1603010200}
DEADLINE_S=3
RSS_BOUND_KB=$((48 * 1024))  # docs/HARDENING.md, "Before authentication"
if ldd "$TB_DAEMON" 2>/dev/null | grep -q libasan; then
  RSS_BOUND_KB=$((RSS_BOUND_KB * 4))  # ASan's shadow memory and quarantine
fi
# The flooder's descriptors, and the concentrator's (it raises its soft limit to this).
ulimit -n "$(ulimit -Hn)" || true
(( $(ulimit -n) >= IDLE + BYTES + 256 )) ||
  { echo "[tb] SKIP: open-file limit $(ulimit -n) below $((IDLE + BYTES + 256))" >&2; exit 4; }

fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }

tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1

# The flooder: a namespace on a link of its own to the concentrator, many prefixes on it.
NS_FLOOD=mpudp-flood-$TB_SUFFIX
ip netns add "$NS_FLOOD" || exit 1
TB_NAMESPACES+=("$NS_FLOOD")
ip -n "$NS_FLOOD" link set lo up &&
  ip -n "$NS_FLOOD" link add fl0 type veth peer name wanf netns "$TB_NS_CONC" &&
  ip -n "$TB_NS_CONC" addr add 198.19.0.1/16 dev wanf &&
  ip -n "$TB_NS_CONC" -6 addr add 2001:db8:77::1/48 dev wanf nodad &&
  ip -n "$TB_NS_CONC" link set wanf up &&
  ip -n "$NS_FLOOD" link set fl0 up || exit 1
SRCS=()
for i in $(seq 1 16); do
  ip -n "$NS_FLOOD" addr add "198.19.$i.2/16" dev fl0 || exit 1
  SRCS+=("198.19.$i.2")
done
for i in $(seq 1 8); do
  ip -n "$NS_FLOOD" -6 addr add "2001:db8:77:${i}00::2/48" dev fl0 nodad || exit 1
  SRCS+=("2001:db8:77:${i}00::2")
done
# Half of the flood from one /24, past its prefix cap; the rest spread thinner, together
# past the total cap (which alone would keep every prefix under its cap).
for i in $(seq 1 ${#SRCS[@]}); do SRCS+=("198.19.1.2"); done
ip -n "$NS_FLOOD" route add 198.18.2.2/32 via 198.19.0.1 dev fl0 &&
  ip -n "$NS_FLOOD" -6 route add 2001:db8:2::2/128 via 2001:db8:77::1 dev fl0 || exit 1
tb_poll 10 _tb_links_ready || { tb_fail "flooder link not ready"; exit 1; }

tb_write_configs multiplexed || exit 1
# Thousands of refused connections: log what an operator would see.
sed -i 's/^log_level: debug$/log_level: info/' "$TB_DIR/conc.yaml"
tb_start_daemon conc conc "$TB_DIR/conc.yaml" || exit 1
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || exit 1
CONC_PID=${TB_PIDS[conc]}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$CONC_PID/status"; }
rss_idle=$(rss_kb)

status() { "$CTL" -s "$TB_DIR/$1.sock" status --json; }

tb_bg flood "$NS_FLOOD" python3 "$FLOOD" --target "198.18.2.2:$TB_CONC_PORT" \
  --target "[2001:db8:2::2]:$TB_CONC_PORT" --src "$(IFS=,; echo "${SRCS[*]}")" \
  --idle "$IDLE" --bytes "$BYTES" --payload "$PAYLOAD" --reconnect --duration "$FLOOD_S" --rate 1500 \
  --drain $((DEADLINE_S + 3)) --ready-file "$TB_DIR/flood.ready"
tb_poll 20 test -e "$TB_DIR/flood.ready" ||
  { bad "the flooder did not get its $((IDLE + BYTES)) connections up"; cat "$TB_DIR/flood.log" >&2; exit 1; }

# The CPE starts into the flood.
rss_max=0
sample() { local r; r=$(rss_kb); ((r > rss_max)) && rss_max=$r; }
t0=$(_tb_now_us)
tb_start_daemon cpe cpe "$TB_DIR/cpe.yaml" || exit 1
tb_wait_listen cpe udp "${TB_TPROXY_PORT:-5555}" 1 10 || exit 1
cpe_up() { sample; grep -Eq 'session [0-9]+ from 198\.18\.1\.1:[0-9]+: multiplexed' "$TB_DIR/conc.log"; }
if tb_poll 10 cpe_up; then
  echo "the CPE's session was up $(( ($(_tb_now_us) - t0) / 1000 )) ms after its start, during the flood"
else
  bad "the CPE did not get a session during the flood"
fi
tb_cli "$TB_PROBE" --sizes 1,512,1400 --count 10 --timeout 3000 "198.18.4.2:$TB_ECHO_PORT" \
  >"$TB_DIR/probe.log" 2>&1 || { bad "the CPE's flow did not pass during the flood"; cat "$TB_DIR/probe.log" >&2; }
tb_running flood || bad "the flood ended before the CPE's flow had been checked (raise FLOOD_S)"

while tb_running flood; do sample; sleep 0.2; done
tb_stop flood TERM 1 >/dev/null 2>&1
tail -n 1 "$TB_DIR/flood.log" >"$TB_DIR/flood.json"
status conc >"$TB_DIR/conc.json" || bad "no status from the concentrator"
status cpe >"$TB_DIR/cpe.json" || bad "no status from the CPE"
echo "concentrator RSS: ${rss_idle} KiB idle, ${rss_max} KiB at most during the flood (bound ${RSS_BOUND_KB} KiB)"
echo "flood: $(cat "$TB_DIR/flood.json")"
((rss_max < RSS_BOUND_KB)) || bad "concentrator RSS ${rss_max} KiB over the bound ${RSS_BOUND_KB} KiB"

IDLE=$IDLE BYTES=$BYTES DEADLINE_S=$DEADLINE_S tb_check "$TB_DIR/flood.json" "$TB_DIR/conc.json" "$TB_DIR/cpe.json" <<'PY'
import os
f, conc, cpe = d["flood"], d["conc"], d["cpe"]
deadline = float(os.environ["DEADLINE_S"])
for kind, n in (("idle", int(os.environ["IDLE"])), ("bytes", int(os.environ["BYTES"]))):
    k = f[kind]
    need(k["connected"] >= n, f"{kind}: {k['connected']} connections made, at least {n}")
    need(k["open_at_exit"] == 0, f"{kind}: {k['open_at_exit']} still open after the deadline")
    need(k["closed_by_peer"] == k["connected"],
         f"{kind}: {k['closed_by_peer']} of {k['connected']} closed by the concentrator")
    need(k["lifetime"]["max"] <= deadline + 1.0,
         f"{kind}: longest lived {k['lifetime']['max']} s (deadline {deadline} s)")
c = conc["stats"]["counters"]
need(c["preauth_evicted_total"] > 0, f"the total cap was reached: preauth_evicted_total {c['preauth_evicted_total']}")
need(c["preauth_evicted_prefix"] > 0, f"a prefix cap was reached: preauth_evicted_prefix {c['preauth_evicted_prefix']}")
need(c["handshake_timeouts"] > 0, f"the deadline closed the rest: handshake_timeouts {c['handshake_timeouts']}")
need(cpe["stats"]["counters"]["tunnel_disconnects"] == 0,
     f"the CPE never lost its session: tunnel_disconnects {cpe['stats']['counters']['tunnel_disconnects']}")
PY
grep -m1 -E 'without authenticating' "$TB_DIR/conc.log" || bad "no log line for the evictions"
grep -E 'without authenticating' "$TB_DIR/conc.log" | grep -q '198\.18\.1\.1' &&
  bad "a connection of the CPE was evicted"
tb_stop_proxies || bad "a daemon did not exit cleanly"
((fail)) && exit 1
echo "PASS: test_tls_preauth"
