#!/usr/bin/env bash
# ICMP transparency (docs/PROTOCOL.md, "ICMP"): what a remote's network says about a
# client's datagram reaches the client, from the original destination, as direct routing
# would have delivered it.
#  - closed port: a connect()ed client socket's recv() fails with ECONNREFUSED within a
#    second (a resolver fails fast instead of waiting for its timeout), IPv4 and IPv6, in
#    both session modes; the binding stays;
#  - a 1280-byte link behind a router beyond the concentrator: a DF client that sends
#    1400 bytes learns path MTU 1280 (IP_MTU / IPV6_MTU, EMSGSIZE on the next send);
#  - a CPE whose HELLO lacks the ICMP capability (an older one, here wirepeer) gets no ICMP
#    frame, which its decoder would take for a protocol error; one that has it does.
#
#   conc ── srv0 ──── eth0 ── srv (router) ── far0 ═══ mtu 1280 ═══ eth0 ── far
#                                              198.18.7.1            198.18.7.2
set -euo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd tools/udpecho tools/wirepeer

tb_setup
tb_tproxy_rules
tb_start_echo
CLIENT=$TB_REPO/test/netns/icmp_client.py

# The router and the narrow link.
FAR=mpudp-far-$TB_SUFFIX
ip netns add "$FAR"
TB_NAMESPACES+=("$FAR")
ip -n "$FAR" link set lo up
ip -n "$TB_NS_SRV" link add far0 type veth peer name eth0 netns "$FAR"
ip -n "$TB_NS_SRV" link set far0 mtu 1280
ip -n "$FAR" link set eth0 mtu 1280
ip -n "$TB_NS_SRV" addr add 198.18.7.1/24 dev far0
ip -n "$TB_NS_SRV" -6 addr add 2001:db8:7::1/64 dev far0 nodad
ip -n "$FAR" addr add 198.18.7.2/24 dev eth0
ip -n "$FAR" -6 addr add 2001:db8:7::2/64 dev eth0 nodad
ip -n "$TB_NS_SRV" link set far0 up
ip -n "$FAR" link set eth0 up
ip -n "$FAR" route add default via 198.18.7.1
ip -n "$FAR" -6 route add default via 2001:db8:7::1
tb_srv sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip -n "$TB_NS_CONC" route add 198.18.7.0/24 via 198.18.4.2
ip -n "$TB_NS_CONC" -6 route add 2001:db8:7::/64 via 2001:db8:4::2
tb_bg echo_far "$FAR" "$TB_ECHO" 198.18.7.2:7 "[2001:db8:7::2]:7"
tb_poll 10 _tb_links_ready || tb_fail "far link not ready"

fail=0
for MODE in ${MODES:-multiplexed per-binding}; do
  echo "=== mode $MODE"
  # Each mode learns the path MTU afresh: the client and the concentrator forget what the
  # mode before taught their kernels (a cached PMTU would make the check below vacuous).
  for ns in cli conc; do
    tb_ns_exec "$ns" ip route flush cache
    tb_ns_exec "$ns" ip -6 route flush cache
  done
  tb_start_proxies "$MODE"

  for dest in 198.18.4.2 2001:db8:4::2; do
    # Port 9 (discard): nothing listens in srv, whose kernel answers port unreachable.
    if t=$(tb_cli python3 "$CLIENT" refused "$dest" 9); then
      echo "$MODE $dest: ECONNREFUSED after $t s"
      python3 -c "import sys; sys.exit(0 if float('$t') < 1.0 else 1)" ||
        { tb_fail "$MODE $dest: ECONNREFUSED took $t s"; fail=1; }
    else
      tb_fail "$MODE $dest: the client did not see ECONNREFUSED"; fail=1
    fi
  done
  # The errors ended no binding: each client endpoint still has its binding on both ends.
  b_cpe=$(tb_ctl cpe bindings --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["bindings"]))')
  ((b_cpe >= 2)) || { tb_fail "$MODE: CPE holds $b_cpe bindings after the errors, wanted 2"; fail=1; }

  for dest in 198.18.7.2 2001:db8:7::2; do
    if mtu=$(tb_cli python3 "$CLIENT" toobig "$dest" 7 1280); then
      echo "$MODE $dest: the DF client learned path MTU $mtu"
    else
      tb_fail "$MODE $dest: the DF client did not learn path MTU 1280"; fail=1
    fi
  done

  for c in wan_icmp_port_unreachable wan_icmp_too_big icmp_frames_tx; do
    v=$(tb_counter conc "$c")
    echo "$MODE: conc $c=$v"
    ((v >= 2)) || { tb_fail "$MODE: conc $c=$v, wanted >= 2"; fail=1; }
  done
  for c in icmp_frames_rx lan_icmp_tx; do
    v=$(tb_counter cpe "$c")
    echo "$MODE: cpe $c=$v"
    ((v >= 4)) || { tb_fail "$MODE: cpe $c=$v, wanted >= 4"; fail=1; }
  done
  tb_stop_proxies || { tb_fail "$MODE: a daemon did not exit cleanly"; fail=1; }
done
echo "=== a CPE without the ICMP capability, and one with it (wirepeer)"
tb_write_configs multiplexed
tb_start_daemon conc conc "$TB_DIR/conc.yaml"
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || tb_fail "concentrator does not listen"
out=$(tb_cpe "$MPUDP_BUILD/tools/wirepeer" "198.18.2.2:$TB_CONC_PORT" \
  "tls:shared:$(tb_psk_hex)" hello expect-hello open:1:198.18.0.2:40000:198.18.4.2:9:41 \
  sleep:500 keepalive expect-keepalive) || { echo "$out"; tb_fail "wirepeer (no capability) failed"; fail=1; }
if grep -q "recv: ICMP" <<<"$out"; then
  echo "$out"; tb_fail "an ICMP frame went to a CPE without the capability"; fail=1
fi
v=$(tb_counter conc icmp_not_sent)
((v >= 1)) || { tb_fail "conc icmp_not_sent=$v, wanted >= 1"; fail=1; }
tb_cpe "$MPUDP_BUILD/tools/wirepeer" "198.18.2.2:$TB_CONC_PORT" \
  "tls:shared:$(tb_psk_hex)" hello-icmp expect-hello open:1:198.18.0.2:40001:198.18.4.2:9:41 \
  expect-icmp:1 keepalive expect-keepalive || { tb_fail "wirepeer (ICMP capability): no ICMP frame"; fail=1; }
tb_stop_daemon conc || { tb_fail "the concentrator exited $?"; fail=1; }

((fail == 0)) || exit 1
echo "PASS: test_icmp_transparency"
