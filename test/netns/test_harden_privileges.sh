#!/usr/bin/env bash
# Least privilege (docs/HARDENING.md "Capabilities"):
#  - a concentrator run as an unprivileged user (nobody, no groups, no capabilities, as
#    mpudpd.service runs it but without even the unit's two) carries datagrams both ways;
#  - a CPE started as root with every capability keeps only CAP_NET_ADMIN and
#    CAP_NET_BIND_SERVICE once started: /proc/PID/status CapEff, CapPrm and the
#    bounding set, with nothing inheritable or ambient; it still carries datagrams
#    (reply sockets are made transparent and bound after the drop);
#  - a concentrator started as root keeps only what its host makes it use: none, or
#    CAP_NET_ADMIN while net.core.rmem_max is below its relay or tunnel buffers.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd tools/udpecho tools/udpprobe
command -v setpriv >/dev/null 2>&1 || { echo "SKIP: no setpriv"; exit 4; }
getent passwd nobody >/dev/null || { echo "SKIP: no user nobody"; exit 4; }
group=nogroup
getent group nogroup >/dev/null || group=nobody

fail=0
bad() { echo "FAIL: $*"; fail=1; }

# status_field NAME FIELD: FIELD of /proc/PID/status of the recorded daemon.
status_field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/${TB_PIDS[$1]}/status"; }
readonly NET_BIND_SERVICE=$((1 << 10)) NET_ADMIN=$((1 << 12))
hex() { printf '%016x' "$1"; }

tb_setup
tb_tproxy_rules
tb_start_echo
tb_write_configs multiplexed

# The unprivileged concentrator's own corner: its key (mode 0600, its own) and a directory
# for its control socket; the daemon binary is read from wherever the build is.
own=$TB_DIR/nobody
mkdir -m 0755 "$own"
chmod 0711 "$TB_DIR"
cp "$TB_DIR/psk" "$own/psk"
chown -R nobody:"$group" "$own"
sed -e "s#$TB_DIR/conc.sock#$own/conc.sock#" -e "s#$TB_DIR/psk#$own/psk#" \
  "$TB_DIR/conc.yaml" >"$own/conc.yaml"
chmod 0644 "$own/conc.yaml"

echo "=== concentrator as nobody"
tb_bg conc conc setpriv --reuid nobody --regid "$group" --clear-groups --inh-caps=-all \
  --no-new-privs "$TB_DAEMON" -c "$own/conc.yaml"
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || { tail -n 30 "$TB_DIR/conc.log"; exit 1; }
[[ $(cat "/proc/${TB_PIDS[conc]}/comm") == mpudpd ]] || bad "the recorded pid is not mpudpd"
[[ $(status_field conc Uid) == "$(id -u nobody)" ]] ||
  bad "concentrator uid $(status_field conc Uid), wanted $(id -u nobody)"
[[ $(status_field conc CapEff) == "$(hex 0)" ]] || bad "unprivileged CapEff $(status_field conc CapEff)"

tb_start_daemon cpe cpe "$TB_DIR/cpe.yaml"
tb_wait_listen cpe udp "${TB_TPROXY_PORT:-5555}" 1 10 || { tail -n 30 "$TB_DIR/cpe.log"; exit 1; }
tb_wait_log cpe "capabilities from now on" 10 || bad "the CPE did not say what it keeps"

# Round trips through the unprivileged concentrator (and the capability-dropped CPE,
# whose reply sockets are made after the drop), both families.
for dest in "198.18.4.2:$TB_ECHO_PORT" "[2001:db8:4::2]:$TB_ECHO_PORT"; do
  tb_cli "$TB_PROBE" --sizes 1,1472 --count 5 --ports 3 --timeout 5000 "$dest" ||
    bad "round trip to $dest through the unprivileged concentrator"
done

echo "=== CPE capabilities after start"
want=$(hex $((NET_ADMIN | NET_BIND_SERVICE)))
for f in CapEff CapPrm CapBnd; do
  got=$(status_field cpe "$f")
  [[ $got == "$want" ]] || bad "CPE $f $got, wanted $want (cap_net_admin, cap_net_bind_service)"
done
for f in CapInh CapAmb; do
  got=$(status_field cpe "$f")
  [[ $got == "$(hex 0)" ]] || bad "CPE $f $got, wanted none"
done
grep -q "keeping cap_net_bind_service: reply sockets bind" "$TB_DIR/cpe.log" || bad "no reason logged for cap_net_bind_service"
echo "CPE: CapEff $(status_field cpe CapEff)"

tb_stop_proxies || bad "a daemon did not exit cleanly"

echo "=== concentrator as root"
tb_start_daemon conc conc "$TB_DIR/conc.yaml"
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || { tail -n 30 "$TB_DIR/conc.log"; exit 1; }
tb_wait_log conc "capabilities from now on" 10 || bad "the concentrator did not say what it keeps"
rmem=$(tb_conc cat /proc/sys/net/core/rmem_max)
want=0
# Below 1 MiB for the relay sockets, below 4 MiB for tunnel.receive_buffer's default.
((rmem < 4194304)) && want=$NET_ADMIN
got=$(status_field conc CapEff)
[[ $got == "$(hex "$want")" ]] || bad "root concentrator CapEff $got, wanted $(hex "$want") (rmem_max $rmem)"
echo "concentrator as root: CapEff $got (net.core.rmem_max $rmem)"
tb_stop_daemon conc || bad "concentrator exit status"

((fail == 0)) && echo "PASS: least privilege"
exit "$fail"
