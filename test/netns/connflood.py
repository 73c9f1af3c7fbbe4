#!/usr/bin/env python3
"""Pre-authentication flood against a concentrator (test/netns/test_tls_preauth.sh).

Opens --idle connections that never send a byte and --bytes connections that send
--payload (5 bytes by default: a TLS record header that announces a 512-byte record and
never sends it) and then stay silent, spread over the --src addresses and the targets.
Each connection is timed from its TCP handshake to the moment the far end closes it. With
--reconnect, a connection the far end closed is replaced by a new one of its kind (at most
--rate new connections a second) until --duration has passed; then no new ones are made,
and the tool waits up to --drain seconds for the far end to close the rest.

Prints one JSON object: per kind, how many were opened, connected, failed to connect, closed
by the far end (and their lifetimes: max, median, 99th percentile), and still open at exit;
plus the largest number open at once.
"""
import argparse
import collections
import errno
import json
import selectors
import socket
import sys
import time


def parse_target(text):
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    return fam, (host, int(port))


class Conn:
    __slots__ = ("kind", "sock", "opened", "connected")

    def __init__(self, kind, sock, opened):
        self.kind, self.sock, self.opened, self.connected = kind, sock, opened, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", action="append", required=True, help="ADDR:PORT, repeatable")
    ap.add_argument("--src", default="", help="comma-separated source addresses (round robin)")
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--bytes", type=int, default=1000)
    ap.add_argument("--payload", default="1603010200", help="hex bytes the --bytes ones send")
    ap.add_argument("--duration", type=float, default=0, help="keep reconnecting this long")
    ap.add_argument("--reconnect", action="store_true")
    ap.add_argument("--rate", type=float, default=2000, help="new connections per second at most")
    ap.add_argument("--drain", type=float, default=10, help="seconds to wait for closes at the end")
    ap.add_argument("--ready-file", default="", help="written once every first connection is up")
    args = ap.parse_args()

    payload = bytes.fromhex(args.payload)
    targets = [parse_target(t) for t in args.target]
    srcs = [s for s in args.src.split(",") if s]
    by_fam = {}
    for s in srcs:
        by_fam.setdefault(socket.AF_INET6 if ":" in s else socket.AF_INET, []).append(s)

    sel = selectors.DefaultSelector()
    stats = {k: {"opened": 0, "connected": 0, "connect_failed": 0, "closed_by_peer": 0,
                 "lifetimes": [], "open_at_exit": 0} for k in ("idle", "bytes")}
    live = {}
    counter = [0]
    max_open = [0]

    def open_one(kind):
        i = counter[0]
        counter[0] += 1
        fam, addr = targets[i % len(targets)]
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        pool = by_fam.get(fam, [])
        if pool:
            s.bind((pool[(i // len(targets)) % len(pool)], 0))
        try:
            s.connect(addr)
        except BlockingIOError:
            pass
        except OSError as e:
            stats[kind]["connect_failed"] += 1
            s.close()
            print(f"connect: {e}", file=sys.stderr)
            return
        c = Conn(kind, s, time.monotonic())
        stats[kind]["opened"] += 1
        live[s.fileno()] = c
        sel.register(s, selectors.EVENT_WRITE, c)
        max_open[0] = max(max_open[0], len(live))

    def finish(c, by_peer):
        sel.unregister(c.sock)
        del live[c.sock.fileno()]
        c.sock.close()
        st = stats[c.kind]
        if c.connected is None:
            st["connect_failed"] += 1
        elif by_peer:
            st["closed_by_peer"] += 1
            st["lifetimes"].append(time.monotonic() - c.connected)
        return c.kind

    start = time.monotonic()
    # Interleaved, so that both kinds are spread over the sources and targets alike.
    pending = collections.deque()
    for i in range(max(args.idle, args.bytes)):
        pending += (["idle"] if i < args.idle else []) + (["bytes"] if i < args.bytes else [])
    first_wave = len(pending)
    ready_written = False
    made = 0
    while True:
        now = time.monotonic()
        reconnecting = args.reconnect and now - start < args.duration
        # New connections, paced.
        allowed = int((now - start) * args.rate) + 1 - made
        while pending and allowed > 0 and (made < first_wave or reconnecting):
            open_one(pending.popleft())
            made += 1
            allowed -= 1
        if not reconnecting and made >= first_wave:
            pending.clear()
        if not ready_written and args.ready_file and made >= first_wave and \
                all(c.connected is not None for c in live.values()):
            with open(args.ready_file, "w") as f:
                f.write("ready\n")
            ready_written = True
        if not live and not pending:
            break
        if not reconnecting and made >= first_wave and now - start > max(args.duration, 0) + args.drain:
            break
        for key, ev in sel.select(timeout=0.05):
            c = key.data
            if c.connected is None:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err != 0:
                    kind = finish(c, False)
                    if reconnecting:
                        pending.append(kind)
                    continue
                c.connected = time.monotonic()
                stats[c.kind]["connected"] += 1
                if c.kind == "bytes":
                    try:
                        c.sock.send(payload)
                    except OSError:
                        pass
                sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno not in (errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT):
                    print(f"recv: {e}", file=sys.stderr)
                data = b""
            if data:
                continue  # a TLS alert before the close, say: only the close counts
            kind = finish(c, True)
            if reconnecting:
                pending.append(kind)

    for c in list(live.values()):
        stats[c.kind]["open_at_exit"] += 1
        c.sock.close()

    def summary(xs):
        xs = sorted(xs)
        if not xs:
            return {"n": 0}
        return {"n": len(xs), "max": round(xs[-1], 3), "p50": round(xs[len(xs) // 2], 3),
                "p99": round(xs[min(len(xs) - 1, int(len(xs) * 0.99))], 3)}

    out = {"max_open": max_open[0], "elapsed": round(time.monotonic() - start, 3)}
    for k, st in stats.items():
        st["lifetime"] = summary(st.pop("lifetimes"))
        out[k] = st
    print(json.dumps(out))


if __name__ == "__main__":
    main()
