# Prelude for the python assertions of the namespace tests (tb_check in lib.sh): the JSON
# files named on the command line, by base name without ".json", in d; need() prints each
# check and remembers a failure in `ok`.
import json, sys
d = {f.rsplit("/", 1)[1][:-5]: json.load(open(f)) for f in sys.argv[1:]}
ok = True
def need(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok = ok and cond
def conns(name, express):
    return [c for c in d[name]["connections"]
            if c["express_connection"] == express and not c.get("copy_carrier")]
def carriers(name):
    return [c for c in d[name]["connections"] if c.get("copy_carrier")]
def counter(name, key):
    return d[name]["stats"]["counters"][key]
def balance(label, status):
    """Every datagram a daemon took in was passed on, dropped (counted) or is still queued
    in a tunnel connection (docs/CONTROL.md); `status` is its `mpudpctl status --json`."""
    c, dr = status["stats"]["counters"], status["stats"]["drops"]
    taken = c["lan_rx_datagrams"] + c["wan_rx_datagrams"] + c["tunnel_rx_datagrams"]
    # Redundant delivery: a datagram sent in N copies is N tunnel datagrams, N - 1 of them
    # duplicates; a copy that came after the first is dropped as a duplicate, not a loss.
    passed = (c["tunnel_tx_datagrams"] - c.get("duplicates_tx", 0) + c["wan_tx_datagrams"] +
              c["lan_tx_datagrams"])
    dropped = sum(dr.values()) + c.get("duplicates_dropped", 0)
    queued = sum(x["queued_datagrams"] for x in status["connections"])
    need(taken == passed + dropped + queued,
         f"{label}: taken in {taken} = passed on {passed} + dropped {dropped} "
         f"{ {k: v for k, v in dr.items() if v} } + queued {queued}")
