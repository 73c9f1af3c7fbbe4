# shellcheck shell=bash
# The namespace testbed: sourced by every test/netns/test_*.sh and by tools/demo.sh.
#
#   cli ── lan0 ─── lan0 ── cpe ── up0 ──── wan0 ── conc ── srv0 ──── eth0 ── srv
#                                 └─ up1 ──── wan1 ─┘   (lo: service address)
#
#   cli  lan0 198.18.0.2/24 2001:db8::2/64     default via 198.18.0.1 / 2001:db8::1
#   cpe  lan0 198.18.0.1/24 2001:db8::1/64
#        up0  198.18.1.1/24 2001:db8:1::1/64   path 0
#        up1  198.18.3.1/24 2001:db8:3::1/64   path 1
#   conc wan0 198.18.1.2/24 2001:db8:1::2/64
#        wan1 198.18.3.2/24 2001:db8:3::2/64
#        service address 198.18.2.2/32 2001:db8:2::2/128 (dummy svc0, or lo without
#        CONFIG_DUMMY): the CPE reaches it over either path
#        srv0 198.18.4.1/24 2001:db8:4::1/64
#   srv  eth0 198.18.4.2/24 2001:db8:4::2/64   default via 198.18.4.1 / 2001:db8:4::1
#
# tb_add_cpe2 adds a second CPE for tests of several tenants (two more namespaces):
#
#   cli2 ── lan0 ─── lan0 ── cpe2 ── up0 ──── wan2 ── conc
#
#   cli2 lan0 198.18.6.2/24 2001:db8:6::2/64   default via 198.18.6.1 / 2001:db8:6::1
#   cpe2 lan0 198.18.6.1/24 2001:db8:6::1/64
#        up0  198.18.5.1/24 2001:db8:5::1/64   the service address via 198.18.5.2
#   conc wan2 198.18.5.2/24 2001:db8:5::2/64
#
# Forwarding is off in cpe and conc, and conc has no route back to the LAN: the server
# reaches the client only through the two proxies (tb_direct_routing changes that for
# reference runs). In cpe, a source rule per uplink address (tables 101 and 102) makes a
# subflow bound to an uplink's address leave on that uplink.
#
# Usage, from a test:
#   source "$(dirname "$0")/lib.sh"
#   tb_require_root_and_tools        # exit 4 (CTest "skip") when this host cannot run it
#   tb_setup                         # namespaces + trap tb_cleanup EXIT
#   tb_tproxy_rules; tb_start_echo
#   tb_start_proxies multiplexed     # configs, both daemons, wait until they listen
#   tb_cli "$TB_PROBE" --sizes 1,512 198.18.4.2:7
#
# Per-path delay, jitter, loss and outages: delay_lib.sh (tools/nfqdelay), sourced after
# this file.
#
# Environment: MPUDP_BUILD (build directory; CTest sets it, default <repo>/build),
# TB_TPROXY_PORT (5555), TB_MPTCP_ENDPOINTS (1: tb_setup calls tb_mptcp_endpoints),
# TB_KEEP (1: keep $TB_DIR after cleanup, for post-mortems), TB_QUIET (1: no step log).
#
# Every function returns non-zero on failure instead of exiting, so it works with and
# without `set -e`; the ones that wait take a timeout in seconds (decimals allowed).

TB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MPUDP_BUILD=${MPUDP_BUILD:-$TB_REPO/build}
TB_TPROXY_PORT=${TB_TPROXY_PORT:-5555}
TB_CONC_PORT=${TB_CONC_PORT:-7000}
TB_ECHO_PORT=${TB_ECHO_PORT:-7}
TB_PROBE=$MPUDP_BUILD/tools/udpprobe
TB_ECHO=$MPUDP_BUILD/tools/udpecho
TB_DAEMON=$MPUDP_BUILD/daemon/mpudpd

# Addresses, for tests that want names rather than numbers.
# shellcheck disable=SC2034
{
TB_SRV4=198.18.4.2
TB_SRV6=2001:db8:4::2
TB_SVC4=198.18.2.2
TB_SVC6=2001:db8:2::2
TB_CLI4=198.18.0.2
TB_CLI6=2001:db8::2
TB_UP0_4=198.18.1.1
TB_UP1_4=198.18.3.1
TB_UP0_6=2001:db8:1::1
TB_UP1_6=2001:db8:3::1
}

declare -gA TB_PIDS=()      # name -> pid of a background process we started
declare -ga TB_NAMESPACES=()
TB_DIR=${TB_DIR:-}
TB_SUFFIX=${TB_SUFFIX:-}
TB_CLEANED=

tb_log() { [[ ${TB_QUIET:-0} == 1 ]] || echo "[tb] $*" >&2; }
tb_fail() { echo "[tb] FAIL: $*" >&2; return 1; }

# ---------------------------------------------------------------------------------------
# Preconditions

tb_require_root_and_tools() {
  if [[ $EUID -ne 0 ]]; then
    echo "[tb] SKIP: needs root (network namespaces)" >&2
    exit 4
  fi
  local t
  for t in ip nft ss nstat sysctl; do
    if ! command -v "$t" >/dev/null 2>&1; then
      echo "[tb] SKIP: '$t' is not installed" >&2
      exit 4
    fi
  done
  if [[ ! -e /proc/sys/net/mptcp/enabled ]]; then
    echo "[tb] SKIP: the kernel has no MPTCP (net.mptcp.enabled missing)" >&2
    exit 4
  fi
}

# Exit 4 unless the named build outputs exist (relative to $MPUDP_BUILD); without
# arguments: the daemon, udpecho and udpprobe.
tb_require_built() {
  local f
  (($# > 0)) || set -- daemon/mpudpd tools/udpecho tools/udpprobe
  for f in "$@"; do
    if [[ ! -x $MPUDP_BUILD/$f ]]; then
      echo "[tb] SKIP: $MPUDP_BUILD/$f is not built" >&2
      exit 4
    fi
  done
}

# ---------------------------------------------------------------------------------------
# Small helpers

# Microseconds since the epoch.
_tb_now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$((10#$t))"; }

# Seconds (decimals allowed) to microseconds.
_tb_s_to_us() {
  local s=$1 int frac
  int=${s%%.*}
  if [[ $s == *.* ]]; then frac=${s#*.}; else frac=; fi
  frac=${frac}000000
  frac=${frac:0:6}
  echo "$(( 10#${int:-0} * 1000000 + 10#$frac ))"
}

# tb_poll TIMEOUT_S CMD...: run CMD until it succeeds (0) or TIMEOUT_S passes (1).
tb_poll() {
  local deadline
  deadline=$(( $(_tb_now_us) + $(_tb_s_to_us "$1") ))
  shift
  while :; do
    if "$@"; then return 0; fi
    (( $(_tb_now_us) >= deadline )) && return 1
    sleep 0.05
  done
}

# Namespace name of a role (cli, cpe, conc, srv); a full namespace name passes through.
_tb_ns() {
  case $1 in
    cli) echo "$TB_NS_CLI" ;;
    cpe) echo "$TB_NS_CPE" ;;
    cli2) echo "$TB_NS_CLI2" ;;
    cpe2) echo "$TB_NS_CPE2" ;;
    conc) echo "$TB_NS_CONC" ;;
    srv) echo "$TB_NS_SRV" ;;
    *) echo "$1" ;;
  esac
}

tb_ns_exec() { local ns; ns=$(_tb_ns "$1"); shift; ip netns exec "$ns" "$@"; }
tb_cli() { ip netns exec "$TB_NS_CLI" "$@"; }
tb_cpe() { ip netns exec "$TB_NS_CPE" "$@"; }
tb_conc() { ip netns exec "$TB_NS_CONC" "$@"; }
tb_srv() { ip netns exec "$TB_NS_SRV" "$@"; }

# ---------------------------------------------------------------------------------------
# Topology

_tb_sysctls() {  # NS FORWARD(0|1)
  ip netns exec "$1" sh -c "
    sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
               net.ipv6.conf.all.dad_transmits=0 net.ipv6.conf.default.dad_transmits=0 \
               net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
               net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
               net.ipv4.ip_forward=$2 net.ipv6.conf.all.forwarding=$2 \
               net.ipv6.conf.default.forwarding=$2 &&
    { [ ! -e /proc/sys/net/mptcp/enabled ] || sysctl -qw net.mptcp.enabled=1; }"
}

# tb_setup: create the four namespaces and wire them up; installs trap tb_cleanup EXIT.
tb_setup() {
  TB_CLEANED=
  _tb_reap_stale
  # The suffix names the shell that owns the testbed, so that a later run can tell a
  # testbed whose owner was killed outright (SIGKILL, a CTest timeout) from a live one.
  TB_SUFFIX=$$-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
  TB_NS_CLI=mpudp-cli-$TB_SUFFIX
  TB_NS_CPE=mpudp-cpe-$TB_SUFFIX
  TB_NS_CONC=mpudp-conc-$TB_SUFFIX
  TB_NS_SRV=mpudp-srv-$TB_SUFFIX
  TB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mpudp-tb.$TB_SUFFIX.XXXXXX") || return 1
  trap tb_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  export TB_DIR TB_NS_CLI TB_NS_CPE TB_NS_CONC TB_NS_SRV
  # iptables/mpudp-rules validates through mpudpd and keeps what it installed in a state
  # file; /run is shared by all namespaces, so each test keeps its own.
  export MPUDPD=${MPUDPD:-$TB_DAEMON} MPUDP_RULES_STATE=$TB_DIR/rules.state
  tb_log "setup: namespaces *-$TB_SUFFIX, files in $TB_DIR"

  local ns
  for ns in "$TB_NS_CLI" "$TB_NS_CPE" "$TB_NS_CONC" "$TB_NS_SRV"; do
    ip netns add "$ns" || return 1
    TB_NAMESPACES+=("$ns")
    ip -n "$ns" link set lo up || return 1
  done
  _tb_sysctls "$TB_NS_CLI" 0 && _tb_sysctls "$TB_NS_CPE" 0 &&
    _tb_sysctls "$TB_NS_CONC" 0 && _tb_sysctls "$TB_NS_SRV" 0 || return 1

  local c=$TB_NS_CLI p=$TB_NS_CPE k=$TB_NS_CONC s=$TB_NS_SRV
  # Links are created inside the namespaces: no name ever exists in the caller's one, so
  # concurrent testbeds cannot collide.
  ip -n "$c" link add lan0 type veth peer name lan0 netns "$p" &&
    ip -n "$p" link add up0 type veth peer name wan0 netns "$k" &&
    ip -n "$p" link add up1 type veth peer name wan1 netns "$k" &&
    ip -n "$k" link add srv0 type veth peer name eth0 netns "$s" || return 1

  local svc_dev=lo
  if ip -n "$k" link add svc0 type dummy 2>/dev/null; then
    svc_dev=svc0
    ip -n "$k" link set svc0 up || return 1
  fi

  # Addresses (nodad: usable at once) and links up.
  {
    _tb_addr "$c" lan0 198.18.0.2/24 2001:db8::2/64 &&
      _tb_addr "$p" lan0 198.18.0.1/24 2001:db8::1/64 &&
      _tb_addr "$p" up0 198.18.1.1/24 2001:db8:1::1/64 &&
      _tb_addr "$p" up1 198.18.3.1/24 2001:db8:3::1/64 &&
      _tb_addr "$k" wan0 198.18.1.2/24 2001:db8:1::2/64 &&
      _tb_addr "$k" wan1 198.18.3.2/24 2001:db8:3::2/64 &&
      _tb_addr "$k" srv0 198.18.4.1/24 2001:db8:4::1/64 &&
      _tb_addr "$s" eth0 198.18.4.2/24 2001:db8:4::2/64 &&
      ip -n "$k" addr add 198.18.2.2/32 dev "$svc_dev" &&
      ip -n "$k" -6 addr add 2001:db8:2::2/128 dev "$svc_dev" nodad
  } || return 1

  # A burst towards a neighbour not yet resolved waits in a queue of 200 kB by default:
  # make it 4 MB so that the first thousand datagrams of a test are not dropped there.
  for ns in "$c" "$p" "$k" "$s"; do
    # shellcheck disable=SC2016
    ip netns exec "$ns" sh -c 'for f in /proc/sys/net/ipv4/neigh/*/unres_qlen_bytes \
      /proc/sys/net/ipv6/neigh/*/unres_qlen_bytes; do echo 4194304 >"$f"; done' || return 1
  done

  # Routes.
  {
    ip -n "$c" route add default via 198.18.0.1 dev lan0 &&
      ip -n "$c" -6 route add default via 2001:db8::1 dev lan0 &&
      ip -n "$s" route add default via 198.18.4.1 dev eth0 &&
      ip -n "$s" -6 route add default via 2001:db8:4::1 dev eth0 &&
      # cpe: the service address over path 0 (preferred) or path 1.
      ip -n "$p" route add 198.18.2.2/32 via 198.18.1.2 dev up0 metric 100 &&
      ip -n "$p" route add 198.18.2.2/32 via 198.18.3.2 dev up1 metric 200 &&
      ip -n "$p" -6 route add 2001:db8:2::2/128 via 2001:db8:1::2 dev up0 metric 100 &&
      ip -n "$p" -6 route add 2001:db8:2::2/128 via 2001:db8:3::2 dev up1 metric 200 &&
      # cpe: source policy, so a subflow bound to an uplink address leaves on that uplink.
      ip -n "$p" rule add from 198.18.1.1 lookup 101 pref 1001 &&
      ip -n "$p" route add 198.18.1.0/24 dev up0 src 198.18.1.1 table 101 &&
      ip -n "$p" route add default via 198.18.1.2 dev up0 table 101 &&
      ip -n "$p" rule add from 198.18.3.1 lookup 102 pref 1002 &&
      ip -n "$p" route add 198.18.3.0/24 dev up1 src 198.18.3.1 table 102 &&
      ip -n "$p" route add default via 198.18.3.2 dev up1 table 102 &&
      ip -n "$p" -6 rule add from 2001:db8:1::1 lookup 101 pref 1001 &&
      ip -n "$p" -6 route add 2001:db8:1::/64 dev up0 table 101 &&
      ip -n "$p" -6 route add default via 2001:db8:1::2 dev up0 table 101 &&
      ip -n "$p" -6 rule add from 2001:db8:3::1 lookup 102 pref 1002 &&
      ip -n "$p" -6 route add 2001:db8:3::/64 dev up1 table 102 &&
      ip -n "$p" -6 route add default via 2001:db8:3::2 dev up1 table 102
  } || return 1

  if [[ ${TB_MPTCP_ENDPOINTS:-1} == 1 ]]; then
    tb_mptcp_endpoints || return 1
  else
    tb_mptcp_limits || return 1
  fi

  # A new veth's operational state turns up only when the kernel's link watcher gets to
  # it, up to a second later, and only then does it get its link-local address. IPv6
  # neighbour solicitations sent before then go unanswered: the first IPv6 datagrams wait
  # a full second for the retry, or are dropped from the unresolved queue. Wait for every
  # link to be up and every address usable instead.
  if ! tb_poll 10 _tb_links_ready; then
    tb_fail "links not ready after 10 s"
    local n
    for n in "${TB_NAMESPACES[@]}"; do ip -n "$n" -6 addr show tentative >&2; done
    return 1
  fi
}

_tb_links_ready() {
  local ns
  for ns in "${TB_NAMESPACES[@]}"; do
    # Every link but lo (UNKNOWN) and dummies (UNKNOWN) must say "state UP".
    ip -n "$ns" -o link show | grep -v -e 'state UP' -e 'state UNKNOWN' | grep -q . &&
      return 1
    [[ -z $(ip -n "$ns" -6 addr show tentative) ]] || return 1
  done
  return 0
}

# Testbeds left by a run that could not clean up (killed with SIGKILL): their owner pid
# is gone. Kill what still runs inside them, delete them and their directory.
_tb_reap_stale() {
  local ns owner pid sfx
  for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
    [[ $ns =~ ^mpudp-(cli|cpe|conc|srv|cli2|cpe2|flood|bal)-([0-9]+)-[0-9a-f]+$ ]] || continue
    owner=${BASH_REMATCH[2]}
    _tb_gone "$owner" || continue
    sfx=${ns#mpudp-*-}
    echo "[tb] removing stale testbed namespace $ns (owner $owner is gone)" >&2
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
    rm -rf "${TMPDIR:-/tmp}/mpudp-tb.$sfx."* 2>/dev/null
  done
  return 0
}

_tb_addr() {  # NS DEV V4/LEN V6/LEN
  ip -n "$1" addr add "$3" dev "$2" &&
    ip -n "$1" -6 addr add "$4" dev "$2" nodad &&
    ip -n "$1" link set "$2" up
}

# MPTCP limits on both proxies: two subflows per connection, two accepted ADD_ADDRs.
tb_mptcp_limits() {
  ip -n "$TB_NS_CPE" mptcp limits set subflows 2 add_addr_accepted 2 &&
    ip -n "$TB_NS_CONC" mptcp limits set subflows 2 add_addr_accepted 2
}

# The in-kernel path manager opens the second subflow from up1's address. Kept apart so
# that a test of a daemon managing its own endpoints can run without it
# (TB_MPTCP_ENDPOINTS=0 before tb_setup).
tb_mptcp_endpoints() {
  tb_mptcp_limits &&
    ip -n "$TB_NS_CPE" mptcp endpoint add 198.18.3.1 dev up1 subflow &&
    ip -n "$TB_NS_CPE" mptcp endpoint add 2001:db8:3::1 dev up1 subflow
}

# tb_tproxy_rules [NS]: TPROXY in cpe (or NS, e.g. cpe2): every UDP datagram coming in
# on lan0 goes to the transparent socket on :$TB_TPROXY_PORT, whatever its destination.
tb_tproxy_rules() {
  local port=${TB_TPROXY_PORT:-5555} ns
  ns=$(_tb_ns "${1:-cpe}")
  ip netns exec "$ns" nft -f - <<EOF || return 1
table inet mpudp_test {
  chain prerouting {
    type filter hook prerouting priority mangle; policy accept;
    iifname "lan0" meta l4proto udp tproxy to :$port meta mark set 1 accept
  }
}
EOF
  ip -n "$ns" rule add fwmark 1 lookup 100 pref 100 &&
    ip -n "$ns" route add local 0.0.0.0/0 dev lo table 100 &&
    ip -n "$ns" -6 rule add fwmark 1 lookup 100 pref 100 &&
    ip -n "$ns" -6 route add local ::/0 dev lo table 100
}

# tb_add_cpe2: a second CPE with a client of its own (see the picture at the top), its
# TPROXY rules included; after tb_setup. tb_start_cpe2 starts its daemon.
tb_add_cpe2() {
  TB_NS_CLI2=mpudp-cli2-$TB_SUFFIX
  TB_NS_CPE2=mpudp-cpe2-$TB_SUFFIX
  export TB_NS_CLI2 TB_NS_CPE2
  local ns c=mpudp-cli2-$TB_SUFFIX p=mpudp-cpe2-$TB_SUFFIX k=$TB_NS_CONC
  for ns in "$c" "$p"; do
    ip netns add "$ns" || return 1
    TB_NAMESPACES+=("$ns")
    ip -n "$ns" link set lo up || return 1
    _tb_sysctls "$ns" 0 || return 1
  done
  ip -n "$c" link add lan0 type veth peer name lan0 netns "$p" &&
    ip -n "$p" link add up0 type veth peer name wan2 netns "$k" &&
    _tb_addr "$c" lan0 198.18.6.2/24 2001:db8:6::2/64 &&
    _tb_addr "$p" lan0 198.18.6.1/24 2001:db8:6::1/64 &&
    _tb_addr "$p" up0 198.18.5.1/24 2001:db8:5::1/64 &&
    _tb_addr "$k" wan2 198.18.5.2/24 2001:db8:5::2/64 &&
    ip -n "$c" route add default via 198.18.6.1 dev lan0 &&
    ip -n "$c" -6 route add default via 2001:db8:6::1 dev lan0 &&
    ip -n "$p" route add 198.18.2.2/32 via 198.18.5.2 dev up0 &&
    ip -n "$p" -6 route add 2001:db8:2::2/128 via 2001:db8:5::2 dev up0 || return 1
  tb_tproxy_rules cpe2 || return 1
  if ! tb_poll 10 _tb_links_ready; then
    tb_fail "cpe2 links not ready after 10 s"
    return 1
  fi
}

# tb_start_cpe2: $TB_DIR/cpe2.yaml (cpe.yaml with its own control socket,
# $TB_DIR/cpe2.sock, TB_CPE2_AUTH as its `auth:` value when set (an identity of its own),
# and TB_CPE2_EXTRA appended) and its daemon in cpe2; waits until it listens. After
# tb_start_proxies (or tb_write_configs).
tb_start_cpe2() {
  sed -e "s|$TB_DIR/cpe.sock|$TB_DIR/cpe2.sock|" "$TB_DIR/cpe.yaml" |
    awk -v auth="${TB_CPE2_AUTH:-}" 'auth != "" && /^auth:/ { print "auth: " auth; next } 1' \
      >"$TB_DIR/cpe2.yaml" &&
    printf '%s\n' "${TB_CPE2_EXTRA:-}" >>"$TB_DIR/cpe2.yaml" || return 1
  tb_start_daemon cpe2 cpe2 "$TB_DIR/cpe2.yaml" || return 1
  if ! tb_wait_listen cpe2 udp "${TB_TPROXY_PORT:-5555}" 1 10; then
    tb_fail "CPE 2 does not listen on UDP :${TB_TPROXY_PORT:-5555}"
    tail -n 30 "$TB_DIR/cpe2.log" >&2
    return 1
  fi
}

# Reference runs without the proxies: cpe and conc route, cli reaches srv natively
# (over path 0).
tb_direct_routing() {
  local ns
  for ns in "$TB_NS_CPE" "$TB_NS_CONC"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 ||
      return 1
  done
  ip -n "$TB_NS_CPE" route add 198.18.4.0/24 via 198.18.1.2 dev up0 &&
    ip -n "$TB_NS_CPE" -6 route add 2001:db8:4::/64 via 2001:db8:1::2 dev up0 &&
    ip -n "$TB_NS_CONC" route add 198.18.0.0/24 via 198.18.1.1 dev wan0 &&
    ip -n "$TB_NS_CONC" -6 route add 2001:db8::/64 via 2001:db8:1::1 dev wan0
}

# ---------------------------------------------------------------------------------------
# Processes

# tb_bg NAME NS CMD...: start CMD in namespace NS (a role or a name) in the background,
# stdout and stderr to $TB_DIR/NAME.log; the pid goes into TB_PIDS[NAME].
tb_bg() {
  local name=$1 ns
  ns=$(_tb_ns "$2")
  shift 2
  ip netns exec "$ns" "$@" >>"$TB_DIR/$name.log" 2>&1 </dev/null &
  TB_PIDS[$name]=$!
}

_tb_gone() {  # PID: exited (gone, or a zombie waiting for us to reap it)
  [[ ! -e /proc/$1 ]] && return 0
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 0
  [[ -z $st || $st == Z || $st == X ]]
}

# tb_stop NAME [SIGNAL] [TIMEOUT_S]: signal a recorded process (TERM), wait for it (5 s,
# then KILL) and return its exit status (128+n when a signal ended it; 124 if it had to
# be killed).
tb_stop() {
  local name=$1 sig=${2:-TERM} timeout=${3:-5}
  local pid=${TB_PIDS[$name]:-}
  [[ -n $pid ]] || { tb_fail "tb_stop: no process named $name"; return 1; }
  kill "-$sig" "$pid" 2>/dev/null || true
  local killed=0
  if ! tb_poll "$timeout" _tb_gone "$pid"; then
    echo "[tb] $name (pid $pid) ignored SIG$sig for ${timeout}s: killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    killed=1
  fi
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  unset "TB_PIDS[$name]"
  ((killed)) && return 124
  return "$rc"
}

# tb_running NAME: the recorded process is still alive.
tb_running() {
  local pid=${TB_PIDS[$1]:-}
  [[ -n $pid ]] && ! _tb_gone "$pid"
}

# Echo server in srv on 198.18.4.2:7 and [2001:db8:4::2]:7; counts in $TB_DIR/echo.count
# once stopped (tb_stop echo).
tb_start_echo() {
  [[ -x $TB_ECHO ]] || { tb_fail "udpecho not built: $TB_ECHO"; return 1; }
  tb_bg echo srv "$TB_ECHO" --count-file "$TB_DIR/echo.count" \
    "198.18.4.2:$TB_ECHO_PORT" "[2001:db8:4::2]:$TB_ECHO_PORT"
  tb_wait_listen srv udp "$TB_ECHO_PORT" 2 5 ||
    { tb_fail "udpecho did not come up"; cat "$TB_DIR/echo.log" >&2; return 1; }
}

# tb_start_daemon NAME NS CONFIGFILE: mpudpd -c CONFIGFILE in NS, output to
# $TB_DIR/NAME.log.
# An earlier log of the same NAME is kept as NAME.<n>.log, so that a test restarting a
# daemon (another mode, another config) waits only on what the new one writes.
tb_start_daemon() {
  [[ -x $TB_DAEMON ]] || { tb_fail "mpudpd not built: $TB_DAEMON"; return 1; }
  if [[ -e $TB_DIR/$1.log ]]; then
    local n=1
    while [[ -e $TB_DIR/$1.$n.log ]]; do n=$((n + 1)); done
    mv "$TB_DIR/$1.log" "$TB_DIR/$1.$n.log"
  fi
  tb_bg "$1" "$2" "$TB_DAEMON" -c "$3"
}

# tb_stop_daemon NAME: SIGTERM, wait at most 5 s, return the daemon's exit status.
tb_stop_daemon() { tb_stop "$1" TERM 5; }

# tb_wait_log NAME REGEX TIMEOUT_S: wait until $TB_DIR/NAME.log has a line matching the
# extended regular expression.
tb_wait_log() {
  local f=$TB_DIR/$1.log
  if tb_poll "$3" grep -Eq -- "$2" "$f"; then return 0; fi
  echo "[tb] no line matching /$2/ in $1.log after $3 s; its tail:" >&2
  tail -n 20 "$f" 2>/dev/null | sed 's/^/    /' >&2
  return 1
}

# Count of sockets listening on PORT in NS: tb_listening NS udp|tcp PORT
tb_listening() {
  local flag=-uln
  [[ $2 == tcp ]] && flag=-tln
  tb_ns_exec "$1" ss "$flag" -H "sport = :$3" | wc -l
}

_tb_listen_at_least() { (( $(tb_listening "$1" "$2" "$3") >= $4 )); }

# tb_wait_listen NS udp|tcp PORT [COUNT] [TIMEOUT_S]: wait for COUNT (1) listeners.
tb_wait_listen() {
  tb_poll "${5:-5}" _tb_listen_at_least "$1" "$2" "$3" "${4:-1}"
}

# tb_write_psk FILE: a fresh random key, 32 bytes as 64 hex digits, mode 0600.
tb_write_psk() {
  (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$1" && echo >>"$1")
}

# tb_psk_hex [FILE]: the key of $TB_DIR/psk (or FILE) as wirepeer's auth:HEXKEY wants it.
tb_psk_hex() { tr -d '\n' <"${1:-$TB_DIR/psk}"; }

# tb_write_configs MODE [IDLE]: $TB_DIR/cpe.yaml and $TB_DIR/conc.yaml; TB_CPE_EXTRA (YAML
# text) is appended to cpe.yaml, TB_CONC_EXTRA to conc.yaml; TB_CPE_KEYS (indented by
# two spaces) goes inside cpe.yaml's `cpe:` section. Both daemons authenticate
# with the key in $TB_DIR/psk (written once per testbed); TB_CPE_AUTH / TB_CONC_AUTH
# replace the `auth:` value of one side (e.g. "none", or "{psk_file: /other}").
tb_write_configs() {
  local mode=$1 idle=${2:-300s} caps=
  [[ -s $TB_DIR/psk ]] || tb_write_psk "$TB_DIR/psk" || return 1
  # A per-binding CPE opens a connection per new binding, a thousand at once in some
  # tests: room for them all to handshake (docs/CONFIG.md, max_handshaking).
  [[ $mode == per-binding ]] && caps=$'  max_handshaking: 4096\n  max_handshaking_per_prefix: 4096'
  cat >"$TB_DIR/cpe.yaml" <<EOF
role: cpe
log_level: debug
control_socket: "$TB_DIR/cpe.sock"
session_mode: $mode
cpe:
  tproxy_port: ${TB_TPROXY_PORT:-5555}
  concentrator: "198.18.2.2:$TB_CONC_PORT"
${TB_CPE_KEYS:-}
bindings:
  idle_timeout: $idle
auth: ${TB_CPE_AUTH:-{psk_file: \"$TB_DIR/psk\"\}}
${TB_CPE_EXTRA:-}
EOF
  cat >"$TB_DIR/conc.yaml" <<EOF
role: concentrator
log_level: debug
control_socket: "$TB_DIR/conc.sock"
session_mode: $mode
concentrator:
  listen: ["0.0.0.0:$TB_CONC_PORT", "[::]:$TB_CONC_PORT"]
$caps
bindings:
  idle_timeout: $idle
auth: ${TB_CONC_AUTH:-{psk_file: \"$TB_DIR/psk\"\}}
${TB_CONC_EXTRA:-}
EOF
}

# tb_start_proxies MODE [IDLE]: configs, concentrator then CPE, and wait until the
# concentrator listens on TCP :7000 and the CPE on UDP :5555 (v4 and v6 each).
tb_start_proxies() {
  tb_write_configs "$@" || return 1
  tb_start_daemon conc conc "$TB_DIR/conc.yaml" || return 1
  if ! tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10; then
    tb_fail "concentrator does not listen on :$TB_CONC_PORT"
    tail -n 30 "$TB_DIR/conc.log" >&2
    return 1
  fi
  tb_start_daemon cpe cpe "$TB_DIR/cpe.yaml" || return 1
  # NFQUEUE mode has no UDP listener: such tests name a log line that says "ready".
  if [[ -n ${TB_CPE_READY_LOG:-} ]]; then
    tb_wait_log cpe "$TB_CPE_READY_LOG" 10 || return 1
  elif ! tb_wait_listen cpe udp "${TB_TPROXY_PORT:-5555}" 1 10; then
    tb_fail "CPE does not listen on UDP :${TB_TPROXY_PORT:-5555}"
    tail -n 30 "$TB_DIR/cpe.log" >&2
    return 1
  fi
}

# tb_stop_proxies: stop both daemons; fails if either exits non-zero.
# tb_conc_start_refused PATTERN [SED_EXPR...]: a second concentrator, started from a
# copy of conc.yaml with its own control socket and port (and SED_EXPRs applied), must
# stop at once, exit 1, with an error matching PATTERN. Says what it got; 1 otherwise.
tb_conc_start_refused() {
  local pattern=$1 rc=0 out e
  shift
  local edits=(-e "s#$TB_DIR/conc.sock#$TB_DIR/conc2.sock#" -e "s/:$TB_CONC_PORT\"/:$((TB_CONC_PORT + 1))\"/g")
  for e in "$@"; do edits+=(-e "$e"); done
  sed "${edits[@]}" "$TB_DIR/conc.yaml" >"$TB_DIR/conc2.yaml"
  out=$(timeout 10 ip netns exec "$TB_NS_CONC" "$TB_DAEMON" -c "$TB_DIR/conc2.yaml" 2>&1) || rc=$?
  echo "start: rc=$rc: $(tail -n 1 <<<"$out")"
  [[ $rc == 1 ]] || { echo "FAIL: the daemon exited $rc, not 1"; return 1; }
  grep -q "$pattern" <<<"$out" || { echo "FAIL: the start error did not name the problem"; return 1; }
}

tb_stop_proxies() {
  local rc=0 r
  if [[ -n ${TB_PIDS[cpe]:-} ]]; then
    tb_stop_daemon cpe || { r=$?; rc=$r; echo "[tb] cpe daemon exited with $r" >&2; }
  fi
  if [[ -n ${TB_PIDS[cpe2]:-} ]]; then
    tb_stop_daemon cpe2 || { r=$?; rc=$r; echo "[tb] cpe2 daemon exited with $r" >&2; }
  fi
  if [[ -n ${TB_PIDS[conc]:-} ]]; then
    tb_stop_daemon conc || { r=$?; rc=$r; echo "[tb] conc daemon exited with $r" >&2; }
  fi
  return "$rc"
}

# ---------------------------------------------------------------------------------------
# Observation

# tb_ctl NAME ARGS...: mpudpctl on the control socket of daemon NAME ($TB_DIR/NAME.sock).
tb_ctl() { local n=$1; shift; "$MPUDP_BUILD/daemon/mpudpctl" -s "$TB_DIR/$n.sock" "$@"; }

# tb_stat NAME counters|drops KEY: one value of daemon NAME's `status` (stats.counters or
# stats.drops).
tb_stat() {
  tb_ctl "$1" status --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"][sys.argv[1]][sys.argv[2]])' "$2" "$3"
}
_tb_stat_is() { [[ $(tb_stat "$1" "$2" "$3") == "$4" ]]; }

# tb_expect NAME counters|drops KEY VALUE WHAT: waits up to 3 s for the value; prints
# "ok" or "FAIL" with WHAT, and sets fail=1 when it never came.
tb_expect() {
  if tb_poll 3 _tb_stat_is "$1" "$2" "$3" "$4"; then
    echo "ok   $5: $1 $3 = $4"
  else
    echo "FAIL $5: $1 $3 = $(tb_stat "$1" "$2" "$3"), expected $4"
    fail=1
  fi
}

# tb_counter NAME COUNTER: a counter of daemon NAME's `status` (stats.counters); fails
# when the daemon does not answer or has no such counter.
tb_counter() {
  tb_ctl "$1" status --json | python3 -c 'import json, sys
print(json.load(sys.stdin)["stats"]["counters"][sys.argv[1]])' "$2"
}

# tb_check FILE... <<'PY': python assertions read from stdin, after the prelude
# test/netns/need.py (d: the JSON files by base name, need, conns, counter); sets fail=1
# when one fails.
tb_check() {
  { cat "$TB_REPO/test/netns/need.py"; cat; echo 'sys.exit(0 if ok else 1)'; } >"$TB_DIR/check.py"
  python3 "$TB_DIR/check.py" "$@" || fail=1
}

# tb_nstat NS COUNTER: absolute value of a kernel counter (MPTcpExt..., TcpExt..., ...);
# 0 when the kernel does not have it. Never touches nstat's history file.
tb_nstat() {
  tb_ns_exec "$1" env NSTAT_HISTORY=/dev/null nstat -asz "$2" 2>/dev/null |
    awk -v c="$2" '$1 == c { v = $2 } END { print v + 0 }'
}

# tb_mptcp_max_subflows NS: the largest subflow count (initial one included) among the
# established MPTCP connections in NS; 0 without any.
tb_mptcp_max_subflows() {
  tb_ns_exec "$1" ss -MtiHn state established 2>/dev/null | awk '
    { for (i = 1; i <= NF; i++) if ($i ~ /^subflows:[0-9]+$/) { split($i, a, ":"); n = a[2] + 1; if (n > max) max = n } }
    /^(ESTAB|tcp|mptcp)/ && max == 0 { max = 1 }
    END { print max + 0 }'
}

# tb_subflow_count NS: established TCP subflows (tcp-ulp-mptcp) to or from the
# concentrator port in NS.
tb_subflow_count() {
  tb_ns_exec "$1" ss -tniH state established \
    "( dport = :$TB_CONC_PORT or sport = :$TB_CONC_PORT )" 2>/dev/null |
    grep -c 'tcp-ulp-mptcp'
}

_tb_subflows_at_least() { (( $(tb_mptcp_max_subflows "$1") >= $2 )); }

# tb_wait_subflows NS N TIMEOUT_S: wait until an MPTCP connection in NS has N subflows.
tb_wait_subflows() {
  if tb_poll "$3" _tb_subflows_at_least "$1" "$2"; then return 0; fi
  echo "[tb] no MPTCP connection in $1 reached $2 subflows in $3 s:" >&2
  tb_ns_exec "$1" ss -Mtin >&2
  tb_ns_exec "$1" ss -tni "( dport = :$TB_CONC_PORT or sport = :$TB_CONC_PORT )" >&2
  return 1
}

# tb_subflow_paths: the uplinks of cpe that carry established subflows towards the
# concentrator, as "up0", "up1" or "up0 up1".
tb_subflow_paths() {
  tb_cpe ss -tnH state established "( dport = :$TB_CONC_PORT )" 2>/dev/null | awk '
    { l = $3; sub(/:[0-9]+$/, "", l); sub(/%.*$/, "", l); gsub(/[][]/, "", l) }
    l == "198.18.1.1" || l == "2001:db8:1::1" || l == "::ffff:198.18.1.1" { p0 = 1 }
    l == "198.18.3.1" || l == "2001:db8:3::1" || l == "::ffff:198.18.3.1" { p1 = 1 }
    END { s = ""; if (p0) s = "up0"; if (p1) s = s (s == "" ? "" : " ") "up1"; print s }'
}

# tb_shape_uplinks RATE [prio]: a token bucket (tc tbf, e.g. 3mbit) on both paths, both
# ways (cpe up0/up1 and conc wan0/wan1). With equal, idle paths the kernel's default MPTCP
# scheduler keeps data on one subflow; a bottleneck per path makes it use both.
# The tbf's queue is one FIFO (100 ms at RATE). With `prio` it is pfifo_fast instead:
# three FIFOs by packet priority (SO_PRIORITY, or the TOS bits), the first served first,
# as deep in full-size packets (txqueuelen) as the FIFO is in bytes.
tb_shape_uplinks() {
  local rate=$1 prio=${2:-} ns d bits qlen si=${1%bit}
  for d in cpe:up0 cpe:up1 conc:wan0 conc:wan1; do
    ns=$(_tb_ns "${d%%:*}")
    d=${d#*:}
    if [[ -z $prio ]]; then
      ip netns exec "$ns" tc qdisc replace dev "$d" root tbf rate "$rate" \
        burst 32kb latency 100ms || return 1
      continue
    fi
    bits=$(numfmt --from=si "${si^^}") || return 1
    qlen=$((bits / 8 / 10 / 1514))  # 100 ms of full-size frames
    ip netns exec "$ns" ip link set dev "$d" txqueuelen "$qlen" &&
      ip netns exec "$ns" tc qdisc replace dev "$d" root handle 1: tbf rate "$rate" \
        burst 32kb latency 100ms &&
      ip netns exec "$ns" tc qdisc replace dev "$d" parent 1:1 pfifo_fast || return 1
  done
}

# tb_unshape_uplinks: remove what tb_shape_uplinks added.
tb_unshape_uplinks() {
  local d
  for d in up0 up1; do ip netns exec "$TB_NS_CPE" tc qdisc del dev "$d" root 2>/dev/null; done
  for d in wan0 wan1; do ip netns exec "$TB_NS_CONC" tc qdisc del dev "$d" root 2>/dev/null; done
  return 0
}

# tb_link_bytes NS DEV: "RX_BYTES TX_BYTES" of an interface.
tb_link_bytes() {
  tb_ns_exec "$1" sh -c "cat /sys/class/net/$2/statistics/rx_bytes \
    /sys/class/net/$2/statistics/tx_bytes" | tr '\n' ' ' | sed 's/ $//'
  echo
}

# tb_tx_bytes NS DEV / tb_rx_bytes NS DEV
tb_tx_bytes() { tb_link_bytes "$1" "$2" | awk '{ print $2 }'; }
tb_rx_bytes() { tb_link_bytes "$1" "$2" | awk '{ print $1 }'; }

# tb_tproxy_selftest: without any daemon, prove that TPROXY hands LAN datagrams to a
# transparent socket on :$TB_TPROXY_PORT in cpe, with their original destination, and
# that a transparent reply from that destination reaches the client (udpprobe checks the
# source). Needs python3, tb_tproxy_rules and udpprobe. Returns udpprobe's status.
tb_tproxy_selftest() {
  local port=${TB_TPROXY_PORT:-5555} rc=0
  cat >"$TB_DIR/tproxy_echo.py" <<'EOF'
import select, socket, struct, sys
IP_TRANSPARENT, IP_RECVORIGDSTADDR = 19, 20
IPV6_TRANSPARENT, IPV6_RECVORIGDSTADDR = 75, 74
port, log = int(sys.argv[1]), open(sys.argv[2], "a", buffering=1)
def listener(fam):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE: python is slow
    if fam == socket.AF_INET:
        s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
        s.setsockopt(socket.SOL_IP, IP_RECVORIGDSTADDR, 1)
        s.bind(("0.0.0.0", port))
    else:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVORIGDSTADDR, 1)
        s.bind(("::", port))
    return s
def origdst(fam, anc):
    for lvl, typ, data in anc:
        if fam == socket.AF_INET and lvl == socket.SOL_IP and typ == IP_RECVORIGDSTADDR:
            p, a = struct.unpack_from("!2xH4s", data)
            return socket.inet_ntop(socket.AF_INET, a), p
        if fam == socket.AF_INET6 and lvl == socket.IPPROTO_IPV6 and typ == IPV6_RECVORIGDSTADDR:
            p, a = struct.unpack_from("!2xH4x16s", data)
            return socket.inet_ntop(socket.AF_INET6, a), p
    return None
ls = [listener(socket.AF_INET), listener(socket.AF_INET6)]
print("ready", file=log)
senders = {}
while True:
    r, _, _ = select.select(ls, [], [], 30)
    if not r:
        break
    for s in r:
        data, anc, _, peer = s.recvmsg(65536, 256)
        dst = origdst(s.family, anc)
        print(f"got {len(data)} from {peer[0]}:{peer[1]} to {dst[0]}:{dst[1]}", file=log)
        out = senders.get((s.family, dst))
        if out is None:
            out = socket.socket(s.family, socket.SOCK_DGRAM)
            out.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if s.family == socket.AF_INET:
                out.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
            else:
                out.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                out.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
            out.bind(dst)
            senders[(s.family, dst)] = out
        out.sendto(data, peer[:2])
EOF
  tb_bg tproxy_echo cpe python3 "$TB_DIR/tproxy_echo.py" "$port" "$TB_DIR/tproxy_echo.out"
  if ! tb_poll 10 grep -qs ready "$TB_DIR/tproxy_echo.out"; then
    tb_fail "transparent test listener did not start"
    cat "$TB_DIR/tproxy_echo.log" >&2
    tb_stop tproxy_echo KILL 1 || true
    return 1
  fi
  tb_cli "$TB_PROBE" --sizes 1,512,1472,8000 --count 3 --ports 4 "198.18.4.2:$TB_ECHO_PORT" ||
    rc=1
  tb_cli "$TB_PROBE" --sizes 1,512,1472,8000 --count 3 --ports 4 \
    "[2001:db8:4::2]:$TB_ECHO_PORT" || rc=1
  tb_stop tproxy_echo TERM 2 >/dev/null 2>&1 || true
  grep -q "to 198.18.4.2:$TB_ECHO_PORT" "$TB_DIR/tproxy_echo.out" || rc=1
  grep -q "to 2001:db8:4::2:$TB_ECHO_PORT" "$TB_DIR/tproxy_echo.out" || rc=1
  return "$rc"
}

# ---------------------------------------------------------------------------------------
# Cleanup

# tb_cleanup: kill what we started, delete the namespaces, remove $TB_DIR. On a failing
# exit, the tails of the logs go to stderr first. Safe to call twice.
tb_cleanup() {
  local rc=$?
  [[ -n $TB_CLEANED ]] && return 0
  TB_CLEANED=1
  # Nothing here may stop half-way (a trap runs under the caller's `set -e`).
  local had_errexit=0
  [[ $- == *e* ]] && had_errexit=1
  set +e
  local name pid ns
  if (( rc != 0 )) && [[ -n $TB_DIR && -d $TB_DIR ]]; then
    local f
    for f in "$TB_DIR"/*.log; do
      [[ -s $f ]] || continue
      echo "---- $(basename "$f") (last 40 lines) ----" >&2
      tail -n 40 "$f" >&2
    done
  fi
  for name in "${!TB_PIDS[@]}"; do
    kill -TERM "${TB_PIDS[$name]}" 2>/dev/null
  done
  for name in "${!TB_PIDS[@]}"; do
    pid=${TB_PIDS[$name]}
    if ! tb_poll 2 _tb_gone "$pid"; then kill -KILL "$pid" 2>/dev/null; fi
    wait "$pid" 2>/dev/null
    unset "TB_PIDS[$name]"
  done
  # Anything else still inside our namespaces was started by this test too.
  for ns in "${TB_NAMESPACES[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  for ns in "${TB_NAMESPACES[@]}"; do
    ip netns del "$ns" 2>/dev/null
  done
  TB_NAMESPACES=()
  if [[ -n $TB_DIR && -d $TB_DIR ]]; then
    if [[ ${TB_KEEP:-0} == 1 ]]; then
      echo "[tb] kept $TB_DIR" >&2
    else
      rm -rf "$TB_DIR"
    fi
  fi
  ((had_errexit)) && set -e
  return 0
}
