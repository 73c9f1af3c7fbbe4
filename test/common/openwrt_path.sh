# shellcheck shell=sh
# A PATH like an OpenWrt image's: the busybox applets OpenWrt enables by default, as
# symlinks to this host's busybox, plus the real tools a package pulls in (nft, ip,
# iptables ... given by name, replacing an applet of that name). An applet OpenWrt
# leaves out is absent, so a script that needs one fails here as it would on a router.
#
# The applets are those `default y` (unconditionally) in OpenWrt's
# package/utils/busybox/Config-defaults.in at both openwrt/openwrt commits
#   ed3da775287b8b8ee96cd1c0ab5d63a7bc2ccdbe (older: nslookup is OpenWrt's
#     NSLOOKUP_OPENWRT, bunzip2/bzcat on, taskset/resize/dhcprelay off)
#   012feaa61fda8315a1c8d8995b0162d0b7c9a52e (newer: upstream nslookup, SHELL_ASH,
#     bunzip2/bzcat off, taskset/resize/dhcprelay on)
# i.e. what a script can count on across those releases. Left out by both (among what
# scripts reach for): paste, od, stat, realpath, timeout, diff, tac, install, watch,
# base64, nohup, setsid, getopt, hostname, tty, whoami, wget, truncate (bcm53xx only).
# Applets this host's busybox does not have (Debian's lacks crond, crontab, flock,
# fsync, nice, ntpd, passwd, pgrep, and OpenWrt's own lock and netmsg) are not linked:
# a script using one fails here although the router has it, never the other way round.
#
#   . test/common/openwrt_path.sh; owrt_path DIR [TOOL...]   -> prints the PATH to use
OWRT_APPLETS="ash sh awk basename brctl cat chgrp chmod chown chroot clear cmp cp crond
crontab cut date dd df dirname dmesg du echo egrep env expr false fgrep find flock free
fsync grep gunzip gzip halt head hexdump hwclock id ifconfig ip kill killall less ln lock
logger login ls md5sum mkdir mkfifo mknod mkswap mktemp mount mv nc netmsg netstat nice
nslookup ntpd passwd pgrep pidof ping ping6 pivot_root poweroff printf ps pwd readlink
reboot reset rm rmdir route sed seq sha256sum sleep sort start-stop-daemon strings
swapoff swapon switch_root sync sysctl tail tar tee test [ [[ time top touch tr
traceroute traceroute6 true udhcpc umount uname uniq uptime vi wc which xargs yes zcat"

owrt_path() {
  _dir=$1
  shift
  _bb=$(command -v busybox) || return 1
  _have=$("$_bb" --list) || return 1
  mkdir -p "$_dir" || return 1
  for _a in $OWRT_APPLETS; do
    case "
$_have
" in
      *"
$_a
"*) ln -sf "$_bb" "$_dir/$_a" || return 1 ;;
    esac
  done
  for _t in "$@"; do
    _p=$(command -v "$_t") && ln -sf "$_p" "$_dir/$_t"
  done
  echo "$_dir"
}
