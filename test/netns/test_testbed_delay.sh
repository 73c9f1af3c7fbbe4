#!/usr/bin/env bash
# The testbed's per-path delay, jitter, loss and outages (issue 20, part 4): tools/nfqdelay
# behind test/netns/delay_lib.sh, measured from outside it. udpprobe in cpe against an
# echo server in conc measures one path's round trip; every bound below has the
# configured delay in it, so a delayer that does nothing fails the test.
#  1. no delayer: both paths answer within a few ms;
#  2. path 0 at 30 ms and path 1 at 10 ms each way: round trips of ~60 ms and ~20 ms, IPv4
#     and IPv6, each path its own;
#  3. jitter (20 ± 8 ms) widens the spread of path 1's round trips, below 40 ms too;
#  4. tb_path_dark 0: nothing crosses path 0 (conc's wan0 answers nothing) while path 1
#     works; tb_path_light 0: path 0 answers again, still delayed;
#     a burst of 20 into a path holding at most 5 (--limit 5) gets 5 through, 15 counted;
#  5. a scheduled outage (--outage-at 1 --outage-for 1) loses the probes sent inside it,
#     and random loss (--loss 30) its share; the delayers' summaries count exactly those;
#     tb_path_loss (nft numgen) loses that share too, and nothing once removed;
#  6. through the tunnel (both daemons, multiplexed): 25 ms on both paths raise the
#     client's round trip to the server by ~50 ms.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/delay_lib.sh"
tb_require_root_and_tools
tb_require_built
tb_path_require

fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }

tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
# An echo server at conc's end of both paths.
tb_bg wanecho conc "$TB_ECHO" 0.0.0.0:9 '[::]:9'
tb_wait_listen conc udp 9 2 5 || { tb_fail "udpecho in conc did not come up"; exit 1; }

WAN4=(198.18.1.2 198.18.3.2)
WAN6=(2001:db8:1::2 2001:db8:3::2)

# probe P 4|6 COUNT RATE: COUNT datagrams over path P from cpe, paced at RATE per second;
# prints "SENT ECHOED P50_US P99_US MAX_US".
probe() {
  local dst
  if [[ $2 == 6 ]]; then dst="[${WAN6[$1]}]:9"; else dst="${WAN4[$1]}:9"; fi
  tb_cpe "$TB_PROBE" --sizes 100 --count "$3" --rate "$4" --timeout 1000 --min-ok 0 --json \
    "$dst" 2>/dev/null | python3 -c 'import json, sys
d = json.load(sys.stdin); r = d["rtt_us"]
print(d["sent"], d["echoed"], r["p50"], r["p99"], r["max"])'
}

# within WHAT VALUE LO HI
within() {
  if (($2 >= $3 && $2 <= $4)); then
    echo "ok   $1: $2 in [$3, $4]"
  else
    bad "$1: $2 not in [$3, $4]"
  fi
}

echo "--- 1. no delayer"
for p in 0 1; do
  read -r sent echoed p50 p99 max < <(probe "$p" 4 20 100)
  echo "path $p: sent $sent echoed $echoed rtt_us p50 $p50 p99 $p99 max $max"
  within "path $p echoed" "$echoed" 20 20
  within "path $p round trip without delay (us)" "$p50" 0 10000
done

echo "--- 2. path 0: 30 ms, path 1: 10 ms each way"
tb_path_delay 0 30 || exit 1
tb_path_delay 1 10 || exit 1
for fam in 4 6; do
  read -r sent echoed p50 p99 max < <(probe 0 "$fam" 20 50)
  echo "path 0 IPv$fam: sent $sent echoed $echoed rtt_us p50 $p50 p99 $p99 max $max"
  within "path 0 IPv$fam echoed" "$echoed" 20 20
  within "path 0 IPv$fam round trip (us)" "$p50" 60000 75000
done
read -r sent echoed p50 p99 max < <(probe 1 4 20 50)
echo "path 1: sent $sent echoed $echoed rtt_us p50 $p50 p99 $p99 max $max"
within "path 1 echoed" "$echoed" 20 20
within "path 1 round trip (us)" "$p50" 20000 35000

# spread P: 60 datagrams over path P in 1.5 s; prints "ECHOED P10_US P50_US P90_US" of
# their round trips. A busy host only ever adds to a round trip, so a low 10th percentile
# is jitter's doing and nothing else's.
cat >"$TB_DIR/spread.py" <<'EOF2'
import select, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], int(sys.argv[2])))
n, gap = 60, 0.025
sent, rtts = {}, []
nxt = time.monotonic()
i, end = 0, None
while end is None or (time.monotonic() < end and len(rtts) < n):
    now = time.monotonic()
    if i < n and now >= nxt:
        s.send(i.to_bytes(4, "big") + bytes(96))
        sent[i] = now
        i, nxt = i + 1, nxt + gap
        if i == n:
            end = now + 1.0
    wait = max(0.0, (nxt if i < n else end) - time.monotonic())
    if select.select([s], [], [], wait)[0]:
        k = int.from_bytes(s.recv(2048)[:4], "big")
        if k in sent:
            rtts.append(time.monotonic() - sent.pop(k))
rtts.sort()
q = lambda p: int(rtts[min(len(rtts) - 1, int(p * len(rtts)))] * 1e6) if rtts else 0
print(len(rtts), q(0.1), q(0.5), q(0.9))
EOF2
spread() { tb_cpe python3 "$TB_DIR/spread.py" "${WAN4[$1]}" 9; }
read -r echoed p10 p50 p90 < <(spread 1)
echo "path 1 at 10 ms: echoed $echoed rtt_us p10 $p10 p50 $p50 p90 $p90"
within "path 1 p10 round trip without jitter (us)" "$p10" 20000 30000

echo "--- 3. jitter: path 1 at 20 ± 8 ms"
tb_path_delay 1 20 8 || exit 1
read -r echoed p10 p50 p90 < <(spread 1)
echo "path 1 at 20 ± 8 ms: echoed $echoed rtt_us p10 $p10 p50 $p50 p90 $p90"
within "path 1 echoed with jitter" "$echoed" 60 60
within "path 1 round trip with jitter (us)" "$p50" 32000 50000
# The sum of two uniform draws in ±8 ms lies 8.8 ms below (above) the 40 ms for a tenth
# of the round trips: without jitter none would be under 40 ms.
within "path 1 p10 round trip with jitter (us)" "$p10" 20000 38000
within "path 1 p90 round trip with jitter (us)" "$p90" 44000 70000

echo "--- 4. path 0 dark, then light"
tb_path_dark 0 || exit 1
tx0=$(tb_tx_bytes conc wan0)
read -r sent echoed p50 p99 max < <(probe 0 4 10 20)
tx1=$(tb_tx_bytes conc wan0)
echo "path 0 dark: sent $sent echoed $echoed; conc wan0 sent $((tx1 - tx0)) bytes"
within "path 0 echoed while dark" "$echoed" 0 0
# conc's delayer drops the probes as they come in, so conc answers none: 10 answers
# would be 1420 bytes; an ARP reply (not IP, not queued) is 42.
within "bytes out of conc over path 0 while dark" "$((tx1 - tx0))" 0 200
read -r sent echoed p50 p99 max < <(probe 1 4 10 20)
within "path 1 echoed while path 0 is dark" "$echoed" 10 10
tb_path_light 0 || exit 1
read -r sent echoed p50 p99 max < <(probe 0 4 10 20)
echo "path 0 light: sent $sent echoed $echoed rtt_us p50 $p50"
within "path 0 echoed after light" "$echoed" 10 10
within "path 0 round trip after light (us)" "$p50" 60000 75000
tb_path_clear 0 || bad "path 0's delayers did not exit cleanly"
# The 10 probes, and perhaps a neighbour solicitation or two (cpe's delayer drops only
# such chatter: no probe came through to be answered).
within "path 0 conc delayer's outage drops" "$(tb_path_summary 0 conc outage)" 10 14
grep -h '^nfqdelay: queue' "$TB_DIR"/delay0_*.log

echo "--- 4b. a burst into a path that holds at most 5 packets"
tb_path_delay 0 100 0 --limit 5 || exit 1
read -r sent echoed p50 p99 max < <(probe 0 4 20 0)
echo "path 0, 20 at once, limit 5: sent $sent echoed $echoed"
within "burst echoed through a limit of 5" "$echoed" 5 5
tb_path_clear 0 || bad "path 0's delayers did not exit cleanly"
# 15, and perhaps a neighbour solicitation that came while the line was full.
within "path 0 conc delayer's limit drops" "$(tb_path_summary 0 conc limit)" 15 17
within "path 0 conc delayer's most held" "$(tb_path_summary 0 conc max_held)" 5 5

echo "--- 5. scheduled outage and random loss on path 1"
# lost_on_path1 WHAT COUNT RATE LO HI [FIELD]: COUNT probes over path 1 at RATE, of which
# LO to HI are lost; with FIELD (outage or lost), path 1's delayers are stopped, and their
# FIELD counts add up to one drop per lost probe (and perhaps a neighbour solicitation).
lost_on_path1() {
  local sent echoed p50 p99 max lost drops
  read -r sent echoed p50 p99 max < <(probe 1 4 "$2" "$3")
  lost=$((sent - echoed))
  echo "path 1, $1: sent $sent echoed $echoed"
  within "probes lost, $1" "$lost" "$4" "$5"
  [[ -n ${6:-} ]] || return 0
  tb_path_clear 1 || bad "path 1's delayers did not exit cleanly"
  drops=$(($(tb_path_summary 1 cpe "$6") + $(tb_path_summary 1 conc "$6")))
  within "$6 drops counted, $1" "$drops" "$lost" $((lost + 2))
  within "replies passed by cpe's delayer, $1" "$(tb_path_summary 1 cpe passed)" \
    "$echoed" $((echoed + 2))
  grep -h '^nfqdelay: queue' "$TB_DIR"/delay1_*.log | tail -n 2
}
tb_path_delay 1 5 0 --outage-at 1 --outage-for 1 || exit 1
# 10 of 30 sent in 3 s, give or take what falls between the two ends' windows (each
# counts from its own start).
lost_on_path1 "dark from 1 s to 2 s" 30 10 8 14 outage
tb_path_delay 1 0 0 --loss 30 --seed 7 || exit 1
# 1 - 0.7² = 51 % expected.
lost_on_path1 "30 % loss each way" 200 400 76 128 lost
# The same share with nft numgen (no delayer on the path), then without it.
tb_path_loss 1 30 || exit 1
lost_on_path1 "30 % loss each way by nft numgen" 200 400 76 128
tb_path_loss 1 0 || exit 1
read -r sent echoed p50 p99 max < <(probe 1 4 20 100)
within "path 1 echoed once the loss rule is gone" "$echoed" 20 20

echo "--- 6. through the tunnel: both paths at 25 ms"
tb_start_proxies multiplexed || exit 1
tunnel() {
  tb_cli "$TB_PROBE" --sizes 100 --count 20 --rate 50 --timeout 2000 --min-ok 0 --json \
    "$TB_SRV4:$TB_ECHO_PORT" 2>/dev/null | python3 -c 'import json, sys
d = json.load(sys.stdin); print(d["sent"], d["echoed"], d["rtt_us"]["p50"])'
}
read -r sent echoed p50 < <(tunnel)
echo "tunnel, no delay: sent $sent echoed $echoed rtt_us p50 $p50"
within "tunnel echoed without delay" "$echoed" 20 20
within "tunnel round trip without delay (us)" "$p50" 0 10000
tb_path_delay 0 25 || exit 1
tb_path_delay 1 25 || exit 1
read -r sent echoed p50 < <(tunnel)
echo "tunnel, 25 ms each way on both paths: sent $sent echoed $echoed rtt_us p50 $p50"
within "tunnel echoed with delay" "$echoed" 20 20
within "tunnel round trip with delay (us)" "$p50" 50000 70000
tb_path_clear 0 || fail=1
tb_path_clear 1 || fail=1
tb_stop_proxies || fail=1

((fail)) && exit 1
echo "PASS: per-path delay, jitter, outages and loss show in real round trips and counts"
