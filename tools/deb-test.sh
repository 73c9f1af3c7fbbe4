#!/usr/bin/env bash
# The Debian package, as a packager and an administrator would meet it: builds the .deb
# from a copy of this tree (dpkg-buildpackage -us -uc -b, Debian's own flags, no -Werror),
# installs it with apt, checks that its files are in place, that mpudpd accepts the
# shipped configuration and that systemd accepts the installed units, runs lintian
# (warnings fail; every override is explained in debian/mpudp.lintian-overrides), and
# purges the package again, also when a step failed, so the machine is left as it was.
#
#   tools/deb-test.sh [WORKDIR]      WORKDIR: where to build and leave the results (else a
#                                    temporary directory, removed at the end)
#
# Needs root (apt-get install/purge). Environment: DEB_BUILD_OPTIONS (default nocheck:
# CI runs the unit tests in its own stages), JOBS.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
KEEP_WORK=0
if [[ -n ${1:-} ]]; then
  WORK=$1 KEEP_WORK=1
else
  WORK=$(mktemp -d /tmp/mpudp-deb.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT  # replaced below once the package is installed
fi
JOBS=${JOBS:-$(nproc)}
export DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-nocheck parallel=$JOBS}
T0=$SECONDS
log() { printf 'deb-test t+%ds: %s\n' "$((SECONDS - T0))" "$*"; }
fail() {
  echo "deb-test: FAIL: $*" >&2
  exit 1
}

if dpkg-query -W -f='${db:Status-Abbrev}' mpudp 2>/dev/null | grep -q '^ii'; then
  fail "mpudp is installed already: this test installs and purges it, so it stops here"
fi

# 1. Build from a copy: dpkg-buildpackage writes into the tree (obj-*, debian/mpudp) and
# next to it (the .deb), neither of which belongs in the worktree.
VERSION=$(dpkg-parsechangelog -l debian/changelog -S Version)
SRC=$WORK/mpudp-$VERSION
rm -rf "$SRC"
mkdir -p "$SRC"
git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
  tar -C "$ROOT" --null -T - -cf - | tar -C "$SRC" -xf -
log "dpkg-buildpackage in $SRC"
(cd "$SRC" && dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1 ||
  { tail -n 60 "$WORK/build.log"; fail "dpkg-buildpackage"; }
ARCH=$(dpkg --print-architecture)
DEB=$WORK/mpudp_${VERSION}_$ARCH.deb
[[ -f $DEB ]] || fail "no $DEB"
log "built $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"

# 2. lintian: errors and warnings fail; info tags are shown.
log "lintian"
lintian --fail-on error,warning --display-info "$WORK/mpudp_${VERSION}_$ARCH.changes" ||
  fail "lintian"

# 3. Install with apt; purge on the way out, whatever happened. A purge leaves the system
# user behind (Debian never removes one: files may still be owned by it); this test
# removes it too when it made it.
had_user=0
getent passwd mpudp >/dev/null && had_user=1
purge() {
  log "purge"
  DEBIAN_FRONTEND=noninteractive apt-get purge -y mpudp >/dev/null
  if ((!had_user)) && getent passwd mpudp >/dev/null; then
    userdel mpudp
    ! getent group mpudp >/dev/null || groupdel mpudp
  fi
  [[ ! -e /etc/mpudp ]] || { echo "deb-test: FAIL: /etc/mpudp is left after purge" >&2; return 1; }
  [[ ! -e /usr/sbin/mpudpd ]] || { echo "deb-test: FAIL: mpudpd is left after purge" >&2; return 1; }
}
trap 'purge || exit 1; ((KEEP_WORK)) || rm -rf "$WORK"' EXIT
log "apt-get install $DEB"
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$DEB" >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log"; fail "apt-get install"; }

# 4. Files in place.
for f in /usr/sbin/mpudpd /usr/sbin/mpudpctl /usr/sbin/mpudp-rules \
  /lib/systemd/system/mpudpd.service /lib/systemd/system/mpudpd-cpe.service \
  /lib/systemd/system/mpudpd@.service \
  /usr/share/man/man8/mpudpd.8.gz /usr/share/man/man8/mpudpctl.8.gz \
  /usr/share/man/man5/mpudp.yaml.5.gz /usr/share/doc/mpudp/copyright \
  /usr/share/doc/mpudp/examples/cpe.yaml /usr/share/doc/mpudp/examples/concentrator.yaml \
  /etc/mpudp/mpudp.yaml /etc/mpudp/psk /etc/logrotate.d/mpudp; do
  [[ -e $f ]] || fail "$f is missing"
done
grep -qx /etc/mpudp/mpudp.yaml /var/lib/dpkg/info/mpudp.conffiles || fail "mpudp.yaml is not a conffile"
grep -qx /etc/logrotate.d/mpudp /var/lib/dpkg/info/mpudp.conffiles ||
  fail "/etc/logrotate.d/mpudp is not a conffile"
if command -v logrotate >/dev/null; then
  logrotate -d /etc/logrotate.d/mpudp >"$WORK/logrotate.log" 2>&1 ||
    { cat "$WORK/logrotate.log"; fail "logrotate -d /etc/logrotate.d/mpudp"; }
fi
getent passwd mpudp >/dev/null || fail "no system user mpudp"
[[ $(stat -c '%U %a' /etc/mpudp/psk) == "mpudp 600" ]] || fail "/etc/mpudp/psk: $(stat -c '%U %a' /etc/mpudp/psk)"
! systemctl is-enabled mpudpd.service >/dev/null 2>&1 || fail "mpudpd.service got enabled"

# 5. The shipped configuration passes, read as the user the unit runs it as; the units
# verify.
setpriv --reuid mpudp --regid mpudp --clear-groups /usr/sbin/mpudpd --check -c /etc/mpudp/mpudp.yaml ||
  fail "mpudpd --check on the shipped configuration, as mpudp"
/usr/sbin/mpudpd --check -c /usr/share/doc/mpudp/examples/cpe.yaml || fail "mpudpd --check cpe.yaml"
systemd-analyze verify /lib/systemd/system/mpudpd.service /lib/systemd/system/mpudpd-cpe.service ||
  fail "systemd-analyze verify"
log "installed package checked"
