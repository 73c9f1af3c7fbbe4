#!/bin/sh
# The procd init script openwrt/mpudp/files/mpudp.init, run for real under the shell given
# (busybox ash with OpenWrt's applets only, from openwrt_uci2yaml.sh) against stubs of the
# OpenWrt functions it calls (rc.common/procd, config_*, uci, network_get_device, logger,
# chown): start_service translates /etc/config/mpudp with each path's logical network
# resolved to its device, checks it with the real mpudpd, installs the rules through
# mpudp-rules (a stub that records its arguments), and asks procd for the instance with
# nofile limits, user, group and capabilities; a path whose network is down refuses to
# start with a message; reload reinstalls the rules and sends SIGHUP.
#
#   openwrt_init.sh MPUDPD TMPDIR      (run by openwrt_uci2yaml.sh under each shell)
# No set -u: rc.common scripts run without it (validate functions take optional arguments).
here=$(cd "$(dirname "$0")" && pwd)
files=$here/../../openwrt/mpudp/files
MPUDPD_BIN=$1
T=$2
LOG=$T/procd.log
UCI_FIXTURE=$T/uci
rc=0
fail() { echo "FAIL: openwrt_init: $*" >&2; rc=1; }

# --- stubs --------------------------------------------------------------------------
uci() {
  [ "$1" = -q ] && shift
  case $1 in
    show) cat "$UCI_FIXTURE" ;;
    get) sed -n "s/^$2='\(.*\)'\$/\1/p" "$UCI_FIXTURE" | grep . ;;
    *) return 1 ;;
  esac
}
config_load() { :; }
config_get() {  # VAR SECTION OPTION [DEFAULT]
  _v=$(uci -q get "mpudp.$2.$3") || _v=${4:-}
  eval "$1=\$_v"
}
config_get_bool() {
  config_get "$@"
  eval "case \$$1 in 1|on|true|yes|enabled) $1=1 ;; *) $1=0 ;; esac"
}
uci_load_validate() {  # PKG TYPE NAME CALLBACK SPEC... (callback gets NAME RESULT)
  _name=$3 _cb=$4
  shift 4
  for _spec in "$@"; do
    _opt=${_spec%%:*} _def=${_spec##*:}
    case $_spec in *:bool:*) config_get_bool "$_opt" "$_name" "$_opt" "$_def" ;;
      *) config_get "$_opt" "$_name" "$_opt" "$_def" ;; esac
  done
  [ -n "$_cb" ] && "$_cb" "$_name" 0
}
network_get_device() {
  case $2 in wan) eval "$1=eth1" ;; wwan) eval "$1=wwan0" ;; *) eval "$1=" ;; esac
}
logger() { echo "logger $*" >>"$LOG"; }
chown() { echo "chown $*" >>"$LOG"; }
for f in procd_open_instance procd_close_instance procd_set_param procd_send_signal \
  procd_add_reload_trigger procd_add_reload_interface_trigger procd_open_validate \
  procd_close_validate; do
  eval "$f() { echo \"$f\${*:+ \$*}\" >>\"\$LOG\"; }"
done
stop() { stop_service; }
start() { start_service; }

# shellcheck source=../../openwrt/mpudp/files/mpudp.init
. "$files/mpudp.init"
PROG=$MPUDPD_BIN
UCI2YAML="sh $files/uci2yaml.sh"
CONF=$T/mpudp.yaml
RUNDIR=$T/run
ROLE_FILE=$RUNDIR/role
RULES_STATE=$T/rules.state
NETWORK_SH=$T/no-network.sh
cat >"$T/rules" <<'RULES'
#!/bin/sh
echo "rules $* state=${MPUDP_RULES_STATE:-}" >>"$LOG"
case " $* " in *" install "*) echo installed >"$MPUDP_RULES_STATE" ;; *" remove "*) rm -f "$MPUDP_RULES_STATE" ;; esac
RULES
chmod +x "$T/rules"
RULES="sh $T/rules"
export LOG

# --- start ---------------------------------------------------------------------------
cp "$here/data/openwrt_init/cpe_networks.uci" "$UCI_FIXTURE"
: >"$LOG"
start_service || fail "start_service failed: $(cat "$LOG")"
grep -q '^  - interface: "eth1"$' "$CONF" || fail "network wan did not become interface eth1"
grep -q '^  - interface: "wwan0"$' "$CONF" || fail "network wwan did not become interface wwan0"
grep -q '^  mask: "0xff00"$' "$CONF" || fail "mask not translated"
"$MPUDPD_BIN" --print-rules -c "$CONF" | grep -q '^FAIL=closed$' || fail "fail closed not translated"
for want in "procd_set_param command $MPUDPD_BIN -c $CONF" \
  "procd_set_param limits nofile=65536 65536" "procd_set_param user mpudp" \
  "procd_set_param group mpudp" "procd_set_param capabilities /etc/capabilities/mpudp.json" \
  "rules --config $CONF install state=$RULES_STATE" "chown mpudp $RUNDIR"; do
  grep -qxF "$want" "$LOG" || fail "start: no \"$want\" in: $(cat "$LOG")"
done
[ "$(cat "$ROLE_FILE")" = "cpe mpudp" ] || fail "role file: $(cat "$ROLE_FILE")"

# --- triggers: the paths' networks reload the service --------------------------------
: >"$LOG"
service_triggers
for want in "procd_add_reload_trigger mpudp" "procd_add_reload_interface_trigger wan" \
  "procd_add_reload_interface_trigger wwan" "procd_open_validate"; do
  grep -qxF "$want" "$LOG" || fail "triggers: no \"$want\" in: $(cat "$LOG")"
done

# --- reload: new mark, rules reinstalled, SIGHUP --------------------------------------
sed -i "s/^mpudp.main.mark=.*/mpudp.main.mark='0x200'/" "$UCI_FIXTURE"
: >"$LOG"
reload_service || fail "reload_service failed: $(cat "$LOG")"
grep -q '^  mark: "0x200"$' "$CONF" || fail "reload: new mark not in $CONF"
grep -qxF "rules --config $CONF install state=$RULES_STATE" "$LOG" || fail "reload: rules not reinstalled"
grep -qxF "procd_send_signal mpudp * HUP" "$LOG" || fail "reload: no SIGHUP: $(cat "$LOG")"

# --- stop: removal from the state, with no configuration --------------------------------
: >"$LOG"
stop_service
grep -qxF "rules remove state=$RULES_STATE" "$LOG" || fail "stop: no remove: $(cat "$LOG")"
[ ! -e "$ROLE_FILE" ] || fail "stop: role file left"

# --- a path whose network is down: no start, a message ---------------------------------
printf "%s\n" "mpudp.up3=path" "mpudp.up3.network='wan6'" >>"$UCI_FIXTURE"
: >"$LOG"
good=$(cat "$CONF")
if start_service; then fail "started with network wan6 down"; fi
grep -q 'network \\"wan6\\" has no device\|network "wan6" has no device' "$LOG" ||
  fail "no message for a network without device: $(cat "$LOG")"
[ "$(cat "$CONF")" = "$good" ] || fail "a refused translation replaced $CONF"
grep -q '^procd_open_instance' "$LOG" && fail "instance started with a refused configuration"

exit "$rc"
