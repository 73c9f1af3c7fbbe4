#!/usr/bin/env bash
# Every datagram is delivered or counted: flows run while each WAN path goes down and
# comes back in turn and both daemons reload their configuration (SIGHUP) under load.
# Afterwards, on each daemon, datagrams taken in (from the LAN or the servers, and from
# the tunnel) equal datagrams passed on (to the tunnel, the servers or the LAN) plus
# datagrams dropped with a reason; and what one side put into the tunnel is what the
# other side read from it.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/paths_lib.sh"
CTL=$MPUDP_BUILD/daemon/mpudpctl
pm_testbed
pm_start_proxies "paths:
  - interface: up0
  - interface: up1" || exit 1
tb_wait_subflows cpe 2 10 || exit 1

fail=0
probes=()
for dst in 198.18.4.2:7 "[2001:db8:4::2]:7"; do
  tb_cli "$TB_PROBE" --json --ports 4 --sizes 300 --rate 150 --duration 10 --timeout 3000 \
    --min-ok 0.8 "$dst" >"$TB_DIR/probe${#dst}.json" 2>"$TB_DIR/probe${#dst}.err" &
  probes+=($!)
done
sleep 1
for up in up1 up0; do
  tb_cpe ip link set "$up" down || exit 1
  sleep 1.5
  tb_cpe ip link set "$up" up || exit 1
  [[ $up == up0 ]] && pm_restore_up0_routes
  tb_poll 10 pm_subflow_from "$([[ $up == up0 ]] && echo 198.18.1.1 || echo 198.18.3.1)" ||
    { echo "FAIL: no subflow over $up after it came back"; fail=1; }
done
kill -HUP "${TB_PIDS[cpe]}" "${TB_PIDS[conc]}"
for p in "${probes[@]}"; do wait "$p" || { echo "FAIL: a probe got less than 80 % back"; fail=1; }; done
for f in "$TB_DIR"/probe*.err; do tail -n 2 "$f"; done
sleep 3.5  # replies still in flight are late, not lost: let the tunnels drain

"$CTL" -s "$TB_DIR/cpe.sock" status --json >"$TB_DIR/cpe.json" || fail=1
"$CTL" -s "$TB_DIR/conc.sock" status --json >"$TB_DIR/conc.json" || fail=1
tb_check "$TB_DIR"/cpe.json "$TB_DIR"/conc.json "$TB_DIR"/probe*.json <<'PY'
cpe_status, conc_status = d["cpe"], d["conc"]
cpe, conc = cpe_status["stats"], conc_status["stats"]
probes = [v for k, v in d.items() if k.startswith("probe")]
balance("cpe", cpe_status)
balance("concentrator", conc_status)
sent = sum(p["sent"] for p in probes)
need(cpe["counters"]["lan_rx_datagrams"] == sent, f"CPE read all {sent} datagrams the clients sent")
need(cpe["counters"]["tunnel_tx_datagrams"] == conc["counters"]["tunnel_rx_datagrams"],
     f"upstream: CPE wrote {cpe['counters']['tunnel_tx_datagrams']}, concentrator read {conc['counters']['tunnel_rx_datagrams']}")
need(conc["counters"]["tunnel_tx_datagrams"] == cpe["counters"]["tunnel_rx_datagrams"],
     f"downstream: concentrator wrote {conc['counters']['tunnel_tx_datagrams']}, CPE read {cpe['counters']['tunnel_rx_datagrams']}")
echoed = sum(p["echoed"] for p in probes)
need(echoed >= 0.8 * sent, f"{echoed} of {sent} echoes came back through path changes and reloads")
PY
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_harden_accounting"
