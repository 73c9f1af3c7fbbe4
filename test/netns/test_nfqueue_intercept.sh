#!/usr/bin/env bash
# The NFQUEUE room against the real kernel, without the daemon: iptables/mpudp-rules
# --mode nfqueue queues the LAN's UDP, tools/nfqecho (NfqueueIntercept + RawReplies)
# answers each datagram from its original destination.
#  - IPv4 and IPv6: replies arrive from the exact destination with the right payload; the
#    kernel of the client checks the UDP checksums, so a bad one would be a lost reply;
#  - 8000-byte datagrams arrive reassembled and their replies (larger than the MTU) leave
#    through a transparent socket instead of the raw one;
#  - with nfqecho stopped, `--fail open` lets the traffic pass natively (queue bypass) and
#    `--fail closed` drops it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built tools/nfqecho tools/udpecho tools/udpprobe
command -v iptables >/dev/null 2>&1 || { echo "[tb] SKIP: iptables is not installed" >&2; exit 4; }

RULES=$TB_REPO/iptables/mpudp-rules
tb_setup
tb_start_echo
# The native path exists (cpe and conc forward), so that fail-open has somewhere to go.
tb_direct_routing

rules() { tb_cpe sh "$RULES" --backend iptables --lan lan0 --mode nfqueue --queue 3 "$@"; }
probe() { tb_cli "$TB_PROBE" --timeout 2000 "$@"; }

rules --fail open install
tb_bg nfqecho cpe "$MPUDP_BUILD/tools/nfqecho" 3 open
tb_wait_log nfqecho ready 5

for dest in "198.18.4.2:$TB_ECHO_PORT" "[2001:db8:4::2]:$TB_ECHO_PORT"; do
  probe --sizes 1,512,1400,8000 --count 3 --ports 2 "$dest" || tb_fail "nfqueue echo $dest"
done
grep -q "to 198.18.4.2:$TB_ECHO_PORT via raw" "$TB_DIR/nfqecho.log" || tb_fail "no raw IPv4 reply"
grep -q "to \[2001:db8:4::2\]:$TB_ECHO_PORT via raw" "$TB_DIR/nfqecho.log" ||
  tb_fail "no raw IPv6 reply"
grep -q "got 8000 .* via transparent" "$TB_DIR/nfqecho.log" ||
  tb_fail "large replies did not take the transparent socket"
tb_stop nfqecho TERM 5

echo "--- fail open: nfqecho stopped, traffic passes natively"
probe --sizes 1,512 --count 2 "198.18.4.2:$TB_ECHO_PORT" || tb_fail "fail open (IPv4)"
probe --sizes 1,512 --count 2 "[2001:db8:4::2]:$TB_ECHO_PORT" || tb_fail "fail open (IPv6)"

echo "--- fail closed: nfqecho stopped, traffic dropped"
rules --fail closed install
if tb_cli "$TB_PROBE" --timeout 500 --sizes 1 --count 2 "198.18.4.2:$TB_ECHO_PORT"; then
  tb_fail "fail closed let IPv4 through"
fi
if tb_cli "$TB_PROBE" --timeout 500 --sizes 1 --count 2 "[2001:db8:4::2]:$TB_ECHO_PORT"; then
  tb_fail "fail closed let IPv6 through"
fi
rules remove
echo "PASS: test_nfqueue_intercept"
