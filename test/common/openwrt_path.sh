# shellcheck shell=sh
# A PATH like an OpenWrt image's: busybox applets from OpenWrt's default busybox
# configuration (package/utils/busybox/Config-defaults.in, 21.02-23.05: the applets it
# enables by default that shell scripts use) as symlinks to this host's busybox, plus the
# real tools a package pulls in (nft, ip, iptables ... given by name). Applets OpenWrt
# leaves out (paste, od, stat, realpath, timeout, diff, tac, install, ...) are absent,
# so a script that needs one fails here as it would on a router.
#
#   . test/common/openwrt_path.sh; owrt_path DIR [TOOL...]   -> prints the PATH to use
OWRT_APPLETS="ash sh awk basename cat chgrp chmod chown chroot clear cmp cp crond crontab
cut date dd df dirname dmesg du echo egrep env expr false fgrep find flock free fsync
grep gunzip gzip halt head hexdump hwclock id kill killall less ln lock logger login ls
md5sum mkdir mkfifo mknod mktemp mount mv nc netstat nice nslookup ntpd passwd pgrep
pidof ping ping6 pivot_root poweroff printf ps pwd readlink reboot reset rm rmdir sed seq
sha256sum sleep sort start-stop-daemon strings switch_root sync sysctl tail tar tee test
[ [[ time top touch tr traceroute traceroute6 true udhcpc umount uname uniq uptime vi
watch wc which xargs yes zcat"

owrt_path() {
  _dir=$1
  shift
  _bb=$(command -v busybox) || return 1
  mkdir -p "$_dir" || return 1
  for _a in $OWRT_APPLETS; do ln -sf "$_bb" "$_dir/$_a" || return 1; done
  for _t in "$@"; do
    _p=$(command -v "$_t") && ln -sf "$_p" "$_dir/$_t"
  done
  echo "$_dir"
}
