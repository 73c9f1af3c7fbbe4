#!/bin/sh
# uci2yaml: translates the UCI configuration /etc/config/mpudp into mpudpd's YAML.
# POSIX sh + awk: runs under busybox ash on OpenWrt and under dash/bash elsewhere.
#
#   uci2yaml.sh [-o OUT] [--from-file FILE]
#
# Reads `uci -q show mpudp` (or, with --from-file, text in that format from FILE, "-"
# for standard input) and writes YAML on standard output (or to OUT, atomically, mode
# 0600). Exit status: 0 done, 1 bad configuration (message on standard error), 64 usage.
#
# Mapping (an option left out keeps the daemon's default, so no defaults live here;
# "list" options may be given more than once; booleans take 1/0, on/off, yes/no,
# true/false):
#   config mpudp 'main'
#     role, log_level, control_socket, metrics_listen, session_mode, intercept -> same key
#     auth 'none' -> auth: none            psk_file -> auth.psk_file
#     nfqueue_queue, nfqueue_fail -> nfqueue.queue, nfqueue.fail
#     list lan, backend, ipv6 (boolean), mark, mask, table, pref, fail, list exclude
#       -> rules.*
#     tproxy_port, concentrator, max_bindings_per_host -> cpe.*
#     list copy_dscp, list copy_port, list copy_host -> cpe.copy_classes.dscp, .ports, .hosts
#     list listen, list allow_destinations, list deny_destinations, max_sessions,
#       max_bindings_per_cpe -> concentrator.*
#     idle_timeout, max_bindings, max_remotes -> bindings.idle_timeout, .max, .max_remotes
#     keepalive, queue_bytes, queue_target, queue_interval, target_delay,
#       limit_path_queue (boolean), receive_buffer, express (boolean),
#       express_priority, express_dscp, express_rate, congestion_control,
#       copies (boolean), copy_rate, copy_spares (a count or a boolean),
#       copy_congestion_control -> tunnel.*
#     limit_subflows, limit_add_addr_accepted -> limits.subflows, limits.add_addr_accepted
#     enabled, user: read by the init script only
#   config path (one per uplink, in order) -> one paths: entry
#     interface (Linux device name), subflow, signal, backup, fullmesh, copies (booleans);
#     network (logical network: wan, wwan): the init script adds its device as interface
# Unknown options and section types are errors, like unknown keys in the YAML: a typo
# must not silently leave a default in force. Values are written as YAML double-quoted
# strings (booleans as true/false), so no value can change the structure.
set -u

PROG=uci2yaml
FROM=
OUT=
while [ $# -gt 0 ]; do
  case $1 in
    --from-file)
      [ $# -ge 2 ] || { echo "$PROG: --from-file needs a file" >&2; exit 64; }
      FROM=$2
      shift
      ;;
    -o)
      [ $# -ge 2 ] || { echo "$PROG: -o needs a file" >&2; exit 64; }
      OUT=$2
      shift
      ;;
    -h | --help)
      echo "usage: $PROG [-o OUT] [--from-file UCI_SHOW_OUTPUT|-]"
      exit 0
      ;;
    *)
      echo "$PROG: unknown argument '$1'" >&2
      exit 64
      ;;
  esac
  shift
done

translate() {
  awk -v prog="$PROG" '
    function fail(msg) { print prog ": " msg > "/dev/stderr"; failed = 1; exit 1 }
    # uci show writes every value in single quotes, a list as quoted words separated by
    # blanks, and a single quote inside a value as quote, backslash, quote, quote (the
    # shell idiom). Splits VALUE into vals[1..n]; returns n.
    function unquote(value, where,   n, i, c, cur, inq, any) {
      n = 0; cur = ""; inq = 0; any = 0
      for (i = 1; i <= length(value); i++) {
        c = substr(value, i, 1)
        if (inq) {
          if (c == "\047") inq = 0; else cur = cur c
        } else if (c == "\047") {
          inq = 1; any = 1
        } else if (c == "\\" && substr(value, i + 1, 1) == "\047") {
          cur = cur "\047"; any = 1; i++
        } else if (c == " ") {
          if (any) { vals[++n] = cur; cur = ""; any = 0 }
        } else {
          cur = cur c; any = 1    # unquoted text: lenient with hand-written input
        }
      }
      if (inq) fail(where ": unterminated quote")
      if (any) vals[++n] = cur
      return n
    }
    # A YAML double-quoted scalar. Control characters are refused rather than escaped:
    # no valid setting contains one.
    function q(s,   i, c, out) {
      out = ""
      for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "\\" || c == "\"") out = out "\\" c
        else if (c < " " || c == "\177") fail("a value holds a control character")
        else out = out c
      }
      return "\"" out "\""
    }
    function bool(s, where) {
      if (s == "1" || s == "on" || s == "yes" || s == "true" || s == "enabled") return "true"
      if (s == "0" || s == "off" || s == "no" || s == "false" || s == "disabled") return "false"
      fail(where ": \"" s "\" is not a boolean (1/0, on/off, yes/no, true/false)")
    }
    BEGIN {
      # option:yaml.key:kind (s scalar, l list, b boolean, c count or boolean, - init script
      # only), in output
      # order within each section; sections in the order of `order`.
      n = split("auth:auth:s psk_file:auth.psk_file:s " \
        "role:role:s log_level:log_level:s control_socket:control_socket:s " \
        "metrics_listen:metrics_listen:s session_mode:session_mode:s intercept:intercept:s " \
        "nfqueue_queue:nfqueue.queue:s nfqueue_fail:nfqueue.fail:s " \
        "lan:rules.lan:l backend:rules.backend:s ipv6:rules.ipv6:b mark:rules.mark:s " \
        "mask:rules.mask:s fail:rules.fail:s " \
        "table:rules.table:s pref:rules.pref:s exclude:rules.exclude:l " \
        "tproxy_port:cpe.tproxy_port:s concentrator:cpe.concentrator:s " \
        "max_bindings_per_host:cpe.max_bindings_per_host:s " \
        "copy_dscp:cpe.copy_classes.dscp:l copy_port:cpe.copy_classes.ports:l " \
        "copy_host:cpe.copy_classes.hosts:l " \
        "listen:concentrator.listen:l allow_destinations:concentrator.allow_destinations:l " \
        "deny_destinations:concentrator.deny_destinations:l " \
        "max_sessions:concentrator.max_sessions:s " \
        "max_bindings_per_cpe:concentrator.max_bindings_per_cpe:s " \
        "idle_timeout:bindings.idle_timeout:s max_bindings:bindings.max:s " \
        "max_remotes:bindings.max_remotes:s keepalive:tunnel.keepalive:s " \
        "queue_bytes:tunnel.queue_bytes:s queue_target:tunnel.queue_target:s " \
        "queue_interval:tunnel.queue_interval:s target_delay:tunnel.target_delay:s " \
        "limit_path_queue:tunnel.limit_path_queue:b " \
        "receive_buffer:tunnel.receive_buffer:s " \
        "express:tunnel.express:b express_priority:tunnel.express_priority:s " \
        "express_dscp:tunnel.express_dscp:s express_rate:tunnel.express_rate:s " \
        "congestion_control:tunnel.congestion_control:s " \
        "copies:tunnel.copies:b copy_rate:tunnel.copy_rate:s copy_spares:tunnel.copy_spares:c " \
        "copy_congestion_control:tunnel.copy_congestion_control:s " \
        "limit_subflows:limits.subflows:s " \
        "limit_add_addr_accepted:limits.add_addr_accepted:s enabled::- user::-", spec, " ")
      for (i = 1; i <= n; i++) {
        split(spec[i], fl, ":")
        opts[i] = fl[1]; key[fl[1]] = fl[2]; kind[fl[1]] = fl[3]
      }
      nopts = n
      nsecs = split("auth nfqueue rules cpe concentrator bindings tunnel paths limits", order, " ")
      split("interface subflow signal backup fullmesh network copies", pf, " ")
      for (i = 1; i <= 7; i++) pathopt[pf[i]] = 1
      npaths = 0; nmain = 0; out = ""
    }
    {
      line = $0
      sub(/\r$/, "", line)
      if (line == "") next
      eq = index(line, "=")
      if (eq == 0) fail("line " NR ": not \"name=value\": " line)
      name = substr(line, 1, eq - 1); value = substr(line, eq + 1)
      nparts = split(name, part, ".")
      if (part[1] != "mpudp") fail("line " NR ": not an mpudp setting: " name)
      if (nparts == 2) {                       # mpudp.SECTION=TYPE
        sec = part[2]
        unquote(value, name); type = vals[1]
        stype[sec] = type
        if (type == "mpudp") {
          if (++nmain > 1) fail(name ": more than one \"config mpudp\" section")
        } else if (type == "path") {
          pathsec[++npaths] = sec
        } else {
          fail(name ": unknown section type \"" type "\" (mpudp, path)")
        }
        next
      }
      if (nparts != 3) fail("line " NR ": cannot parse \"" name "\"")
      sec = part[2]; opt = part[3]
      if (!(sec in stype)) fail(name ": option before its section")
      n = unquote(value, name)
      if (n == 0) fail(name ": no value")
      if (stype[sec] == "mpudp") {
        if (!(opt in key)) fail(name ": unknown option \"" opt "\"")
        if (n != 1 && kind[opt] != "l") fail(name ": \"" opt "\" takes one value, not a list")
        if (kind[opt] == "b" || (kind[opt] == "c" && vals[1] !~ /^[0-9]+$/))
          vals[1] = bool(vals[1], name)
        cnt[opt] = n
        for (i = 1; i <= n; i++) val[opt, i] = vals[i]
      } else {
        if (!(opt in pathopt))
          fail(name ": unknown option \"" opt "\" (interface, network, subflow, signal, backup, fullmesh, copies)")
        if (n != 1) fail(name ": \"" opt "\" takes one value, not a list")
        pval[sec, opt] = opt == "interface" || opt == "network" ? vals[1] : bool(vals[1], name)
      }
    }
    function emit(s) { out = out s "\n" }
    function value_of(opt) { return kind[opt] == "b" || kind[opt] == "c" ? val[opt, 1] : q(val[opt, 1]) }
    # Every set option whose key is in section SEC ("" for top-level keys); a key one
    # level deeper (cpe.copy_classes.dscp) goes under the heading of its subsection, written
    # once (such options are next to each other in spec).
    function section(sec,   i, o, k, j, head, subsec, lastsubsec, ind) {
      head = 0; lastsubsec = ""
      for (i = 1; i <= nopts; i++) {
        o = opts[i]; k = key[o]
        if (!(o in cnt) || kind[o] == "-") continue
        if (sec == "") { if (index(k, ".") || k == "auth") continue }
        else if (index(k, sec ".") != 1) continue
        else k = substr(k, length(sec) + 2)
        if (sec != "" && !head) { emit(sec ":"); head = 1 }
        ind = sec == "" ? "" : "  "
        subsec = ""
        if (sec != "" && index(k, ".")) {
          subsec = substr(k, 1, index(k, ".") - 1); k = substr(k, index(k, ".") + 1)
          if (subsec != lastsubsec) emit(ind subsec ":")
          ind = ind "  "
        }
        lastsubsec = subsec
        if (kind[o] == "l") {
          emit(ind k ":")
          for (j = 1; j <= cnt[o]; j++) emit(ind "  - " q(val[o, j]))
        } else {
          emit(ind k ": " value_of(o))
        }
      }
    }
    END {
      if (failed) exit 1
      if (nmain == 0) fail("no \"config mpudp\" section")
      emit("# Generated from /etc/config/mpudp by uci2yaml; edit that file, not this one.")
      if ("auth" in cnt) {
        if (val["auth", 1] != "none") fail("mpudp.main.auth: \"" val["auth", 1] "\" is not none (for a key, set psk_file)")
        if ("psk_file" in cnt) fail("mpudp.main: auth none and psk_file together")
        emit("auth: none")
      } else {
        section("auth")
      }
      section("")
      for (s = 1; s <= nsecs; s++) {
        if (order[s] == "paths") {
          if (npaths == 0) continue
          emit("paths:")
          for (p = 1; p <= npaths; p++) {
            sec = pathsec[p]
            if (!((sec, "interface") in pval) && ((sec, "network") in pval))
              fail("mpudp." sec ": network \"" pval[sec, "network"] "\" has no device (is it up?)")
            if (!((sec, "interface") in pval)) fail("mpudp." sec ": path without option interface or network")
            emit("  - interface: " q(pval[sec, "interface"]))
            for (f = 2; f <= 7; f++)
              if (f != 6 && (sec, pf[f]) in pval) emit("    " pf[f] ": " pval[sec, pf[f]])
          }
        } else if (order[s] != "auth") {
          section(order[s])
        }
      }
      printf "%s", out
    }'
}

source_text() {
  if [ -z "$FROM" ]; then
    uci -q show mpudp || { echo "$PROG: cannot read the UCI configuration mpudp" >&2; return 1; }
  elif [ "$FROM" = - ]; then
    cat
  else
    [ -r "$FROM" ] || { echo "$PROG: cannot read $FROM" >&2; return 1; }
    cat "$FROM"
  fi
}

if [ -z "$OUT" ]; then
  text=$(source_text) || exit 1
  printf '%s\n' "$text" | translate
  exit $?
fi
text=$(source_text) || exit 1
tmp=$OUT.tmp.$$
(umask 077 && printf '%s\n' "$text" | translate >"$tmp") || {
  rm -f "$tmp"
  exit 1
}
mv -f "$tmp" "$OUT"
