#!/usr/bin/env bash
# The operator's binding log (issue 19; docs/CONFIG.md "concentrator.binding_log"): two CPEs with
# identities of their own (home-a, home-b) send from known client ports, IPv4 and IPv6.
# The concentrator's log file (concentrator.binding_log.path) must list exactly those
# bindings: an open line each while they live, naming the right identity, the client
# endpoint, and an external address:port the concentrator really holds; a close line each
# once they expired, with the datagrams and bytes that crossed. Then logrotate's recipe:
# the file moved away, SIGHUP, and the next binding's lines go to a new file by the old
# name; stopping the daemon writes the close lines (reason shutdown) before it exits.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tls_lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho
PORTS=$(dirname "$0")/udp_ports.py
IDLE=8s
LOG=
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }

tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_add_cpe2 || exit 1
tb_start_echo || exit 1
LOG=$TB_DIR/bindings.log
tls_peers "$TB_DIR/peers" home-a home-b || exit 1
TB_CONC_AUTH="{peers_file: \"$TB_DIR/peers\"}"
TB_CPE_AUTH=$(tls_psk_auth home-a)
TB_CPE2_AUTH=$(tls_psk_auth home-b)
export TB_CONC_AUTH TB_CPE_AUTH TB_CPE2_AUTH
tb_write_configs multiplexed "$IDLE" || exit 1
python3 - "$TB_DIR/conc.yaml" "$LOG" <<'PY' || exit 1
import sys
p, log = sys.argv[1], sys.argv[2]
s = open(p).read()
s = s.replace("concentrator:\n", f"concentrator:\n  binding_log:\n    path: \"{log}\"\n", 1)
open(p, "w").write(s)
PY
tb_start_daemon conc conc "$TB_DIR/conc.yaml" || exit 1
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 ||
  { tb_fail "concentrator did not start"; tail -n 20 "$TB_DIR/conc.log" >&2; exit 1; }
tb_wait_log conc "binding log: file $LOG" 5 || bad "the concentrator did not say where the binding log goes"
tb_start_daemon cpe cpe "$TB_DIR/cpe.yaml" || exit 1
tb_wait_listen cpe udp "$TB_TPROXY_PORT" 1 10 || exit 1
tb_start_cpe2 || exit 1
tb_wait_log cpe "tunnel up" 10 && tb_wait_log cpe2 "tunnel up" 10 || exit 1

# The traffic: each port sends one datagram "port N" and gets its echo.
round() {  # NS BASE COUNT HOST
  local got
  got=$(tb_ns_exec "$1" python3 "$PORTS" round "$2" "$3" "$4" "$TB_ECHO_PORT")
  [[ $got == "$3" ]] || bad "$1: $got of $3 echoes from ports $2.. to $4"
}
round cli 41000 3 "$TB_SRV4"
round cli 41100 2 "$TB_SRV6"
round cli2 42000 2 "$TB_SRV4"
round cli2 42100 1 "$TB_SRV6"
EXPECT=8

count() { grep -c -- "$2" "$1" 2>/dev/null || true; }
at_least() { (( $(count "$1" "$2") >= $3 )); }

# Open lines within a second (the writer's flush), while the bindings live ($IDLE).
tb_poll 3 at_least "$LOG" " event=open " "$EXPECT" ||
  bad "$(count "$LOG" " event=open ") open lines after 3 s, $EXPECT expected"
tb_conc ss -Huan >"$TB_DIR/conc-udp.txt"
cp "$LOG" "$TB_DIR/bindings-alive.log"

# check.py FILE...: the lines of the files, parsed by the documented grammar, in `lines`.
cat >"$TB_DIR/parse.py" <<'PY'
import re, sys
TOKEN = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ ]*)(?: |$)')
def unquote(v):
    if not v.startswith('"'):
        return v
    return re.sub(r'\\x([0-9a-f]{2})|\\(.)',
                  lambda m: chr(int(m.group(1), 16)) if m.group(1) else m.group(2), v[1:-1])
def parse(line):
    pos, out = 0, {}
    while pos < len(line):
        m = TOKEN.match(line, pos)
        if not m:
            raise ValueError(f"unparsable at {pos}: {line!r}")
        out[m.group(1)] = unquote(m.group(2))
        pos = m.end()
    return out
lines = [parse(l.rstrip("\n")) for f in sys.argv[1:] for l in open(f) if l.strip()]
ok = True
def need(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok = ok and cond
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
def expected():
    e = {}
    for base, n, ident in ((41000, 3, "home-a"), (42000, 2, "home-b")):
        for p in range(base, base + n):
            e[f"{'198.18.0.2' if ident == 'home-a' else '198.18.6.2'}:{p}"] = ident
    for base, n, ident, a in ((41100, 2, "home-a", "2001:db8::2"), (42100, 1, "home-b", "2001:db8:6::2")):
        for p in range(base, base + n):
            e[f"[{a}]:{p}"] = ident
    return e
PEERS = {"home-a": ("198.18.1.1", "198.18.3.1", "2001:db8:1::1", "2001:db8:3::1"),
         "home-b": ("198.18.5.1", "2001:db8:5::1")}
def port_of(ep):
    return int(ep.rsplit(":", 1)[1])
PY

check() {  # FILE... <<PY
  { cat "$TB_DIR/parse.py"; cat; echo 'sys.exit(0 if ok else 1)'; } >"$TB_DIR/check.py"
  python3 "$TB_DIR/check.py" "$@" || fail=1
}

check "$TB_DIR/bindings-alive.log" <<PY
udp = open("$TB_DIR/conc-udp.txt").read().split()
held = {int(w.rsplit(":", 1)[1]) for w in udp if ":" in w and w.rsplit(":", 1)[1].isdigit()}
opens = [l for l in lines if l["event"] == "open"]
e = expected()
need(len(lines) == len(opens), f"while the bindings live there are only open lines ({len(lines) - len(opens)} others)")
need(sorted(l["client"] for l in opens) == sorted(e), f"one open line per client endpoint the traffic used: {sorted(l['client'] for l in opens)}")
need(all(l["identity"] == e.get(l["client"]) for l in opens), "each names its CPE's identity: " + ", ".join(f"{l['client']}={l['identity']}" for l in opens))
need(all(l["peer"] in PEERS.get(l["identity"], ()) for l in opens), "each names the CPE's tunnel address: " + ", ".join(sorted({l['peer'] for l in opens})))
need(all(RFC3339.match(l["time"]) for l in opens), "times are RFC 3339 UTC with milliseconds")
v4 = [l["external"] for l in opens if not l["client"].startswith("[")]
v6 = [l["external"] for l in opens if l["client"].startswith("[")]
need(all(x.startswith("198.18.4.1:") for x in v4) and all(x.startswith("[2001:db8:4::1]:") for x in v6),
     f"the external address is the concentrator's towards the server: {sorted(set(x.rsplit(':', 1)[0] for x in v4 + v6))}")
need(all(port_of(x) in held for x in v4 + v6), "each external port is a UDP socket the concentrator holds")
need(len({l["external"] for l in opens}) == len(opens), "no two bindings share an external address:port")
PY

# Close lines once the bindings expired on both ends.
tb_poll 20 at_least "$LOG" " event=close " "$EXPECT" ||
  bad "$(count "$LOG" " event=close ") close lines after the bindings' lifetime, $EXPECT expected"
cp "$LOG" "$TB_DIR/bindings-ended.log"
check "$TB_DIR/bindings-ended.log" <<PY
opens = {l["client"]: l for l in lines if l["event"] == "open"}
closes = [l for l in lines if l["event"] == "close"]
e = expected()
need(len(lines) == 2 * len(e), f"{len(lines)} lines: one open and one close per binding ({2 * len(e)})")
need(sorted(l["client"] for l in closes) == sorted(e), "one close line per client endpoint")
for l in closes:
    o = opens.get(l["client"], {})
    msg = f"b'port {port_of(l['client'])}'"
    size = len("port %d" % port_of(l["client"]))
    need(all(l[k] == o.get(k) for k in ("identity", "peer", "session", "external")),
         f"{l['client']}: close names what its open named ({l['identity']}, {l['external']})")
    need(l["reason"] in ("expired", "peer_closed"), f"{l['client']}: ended by its lifetime ({l['reason']})")
    need((l["up_datagrams"], l["up_bytes"], l["down_datagrams"], l["down_bytes"]) == ("1", str(size), "1", str(size)),
         f"{l['client']}: one datagram of {size} bytes each way "
         f"(up {l['up_datagrams']}/{l['up_bytes']}, down {l['down_datagrams']}/{l['down_bytes']})")
    need(7500 <= int(l["duration_ms"]) <= 20000 and l["end"] == l["time"] and RFC3339.match(l["start"]),
         f"{l['client']}: start, end and a duration of about the lifetime ({l['duration_ms']} ms)")
PY
lines_n=$(tb_counter conc binding_log_lines) || bad "conc counters"
errors_n=$(tb_counter conc binding_log_write_errors) || bad "conc counters"
[[ $lines_n == $((2 * EXPECT)) ]] || bad "binding_log_lines is $lines_n, $((2 * EXPECT)) expected"
[[ $errors_n == 0 ]] || bad "binding_log_write_errors is $errors_n"
((fail == 0)) && echo "ok   $EXPECT bindings of two identities: open and close lines, counters $lines_n lines, $errors_n errors"

# logrotate: move the file away, SIGHUP (the daemon opens the name again), new traffic.
mv "$LOG" "$LOG.1"
mark=$(tls_log_mark conc)
kill -HUP "${TB_PIDS[conc]}"
tls_wait_log_after conc "$mark" "configuration reloaded" 5 || bad "the concentrator did not reload on SIGHUP"
round cli2 43000 1 "$TB_SRV4"
tb_poll 3 at_least "$LOG" "client=198.18.6.2:43000" 1 || bad "no open line in the new file after SIGHUP"
[[ $(count "$LOG.1" "43000") == 0 ]] || bad "the rotated file got lines after SIGHUP"
# Stopping the daemon ends the binding: its close line is written before the exit.
tb_stop_daemon conc || bad "the concentrator exited non-zero"
grep -q "event=close .*client=198.18.6.2:43000 .*reason=shutdown " "$LOG" ||
  { bad "no close line with reason shutdown for the binding alive at exit"; cat "$LOG" >&2; }
((fail == 0)) && echo "ok   reopened on SIGHUP; at exit: $(grep -c . "$LOG") lines in the new file"

# A file that cannot be opened stops the daemon at start, with the key in the message.
sed -e "s|path: \"$LOG\"|path: \"$TB_DIR/no/such/dir.log\"|" "$TB_DIR/conc.yaml" >"$TB_DIR/conc-bad.yaml"
rc=0
tb_conc "$TB_DAEMON" -c "$TB_DIR/conc-bad.yaml" >"$TB_DIR/conc-bad.log" 2>&1 || rc=$?
((rc != 0)) || bad "the concentrator started with a binding log it cannot open"
grep -q "concentrator.binding_log: $TB_DIR/no/such/dir.log: No such file or directory" "$TB_DIR/conc-bad.log" ||
  { bad "no clear error for the binding log it cannot open"; cat "$TB_DIR/conc-bad.log" >&2; }

tb_stop_proxies || bad "a daemon exited non-zero"
((fail == 0)) || exit 1
echo "PASS: test_oplog_binding_log"
