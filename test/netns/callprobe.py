# A "call" through the tunnel, timed one way in each direction (issue 20): a steady flow
# of small datagrams from the client, echoed by `callprobe.py echo` in the server, which
# stamps its own arrival time into each one. Every namespace reads the same clock, so
# the sender learns when each datagram reached the server (upstream delay) and when its
# echo came back (downstream delay) without any clock offset.
#
#   callprobe.py echo ADDR PORT            in the server: answer until SIGTERM
#   callprobe.py call HOST PORT RATE SIZE SECONDS [WAIT_S]
#                                          in the client: send RATE datagrams/s of SIZE
#                                          bytes for SECONDS, then wait WAIT_S (5) for the
#                                          last echoes; one JSON object on stdout
#   callprobe.py outage CALL_JSON DARK LIGHT FAST_MS SLOW_MS [LATE_MS]
#                                          what the call went through when the fast path
#                                          (FAST_MS one way) went dark at time DARK until
#                                          LIGHT (time.time() values; bash's
#                                          $EPOCHREALTIME), the slow one being SLOW_MS:
#                                          one JSON object (see outage())
#   callprobe.py summary CALL_JSON DARK LIGHT DEADLINE_MS [PAUSES_JSON]
#                                          the call as a user hears it (bench/run.sh's
#                                          realtime scenario): one JSON object (see
#                                          summary())
#   callprobe.py pauses SECONDS            watch for SECONDS whether this process gets
#                                          the CPU every few ms; the times it did not for
#                                          40 ms or more (a virtual machine paused by its
#                                          host: every process on it stops alike), as a
#                                          JSON list of [from, to] time.time() values
#
# The JSON has "start" (time.time() of the first send), "interval" (s) and "d": one
# [t_send, up_s, down_s] per datagram in sequence order, times relative to "start", with
# up_s/down_s null when the datagram (or its echo) never came. Datagrams are 160 B by
# default: magic "CALL", sequence number, send time, server time (doubles), padding.
import json, select, signal, socket, struct, sys, time

HDR = struct.Struct("!4sIdd")
MAGIC = b"CALL"


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def echo(addr, port):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.bind((addr, port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(65535)
        now = time.time()
        if len(data) >= HDR.size and data[:4] == MAGIC:
            magic, seq, sent, _ = HDR.unpack_from(data)
            data = HDR.pack(magic, seq, sent, now) + data[HDR.size:]
        s.sendto(data, peer)


def call(host, port, rate, size, seconds, wait):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.connect((host, port))
    s.setblocking(False)
    n = int(rate * seconds)
    gap = 1.0 / rate
    pad = bytes(max(0, size - HDR.size))
    sent = [0.0] * n
    up = [None] * n
    down = [None] * n
    start = time.time()
    i = 0
    end = None
    while True:
        now = time.time()
        while i < n and now >= start + i * gap:
            sent[i] = time.time()
            try:
                s.send(HDR.pack(MAGIC, i, sent[i], 0.0) + pad)
            except OSError:
                pass  # counted as never delivered
            i += 1
            if i == n:
                end = now + wait
        if end is not None and (now >= end or all(d is not None for d in down)):
            break
        timeout = (start + i * gap - now) if i < n else (end - now)
        if select.select([s], [], [], max(0.0, timeout))[0]:
            while True:
                try:
                    data = s.recv(65535)
                except BlockingIOError:
                    break
                back = time.time()
                if len(data) < HDR.size or data[:4] != MAGIC:
                    continue
                _, seq, t0, t_srv = HDR.unpack_from(data)
                if seq < n and down[seq] is None:
                    up[seq] = t_srv - t0
                    down[seq] = back - t_srv
    r = lambda x: None if x is None else round(x, 6)
    print(json.dumps({"start": start, "interval": gap,
                      "d": [[r(sent[k] - start), r(up[k]), r(down[k])] for k in range(n)]}))


def outage(d, dark, light, fast_ms, slow_ms, late_ms=150):
    """Per direction ("up": client to server, "down": back): datagrams not delivered within
    LATE_MS ("late", never-delivered ones included), the longest time the receiver got
    nothing between one second before DARK and three after LIGHT ("gap_ms"), and, by
    their one-way delay, which path carried the datagrams: a delay under the middle of
    the two paths' is the fast path, one under the slow path's plus half the difference
    the slow path, anything later waited for a retransmission. "moved_ms": from DARK to
    the send time of the first datagram carried by the slow path; "steady_ms": from DARK
    to the first send after which every datagram sent in the outage was on time; "back_ms":
    from LIGHT to the first send carried by the fast path again (null: never)."""
    start = d["start"]
    dark -= start
    light -= start
    mid = (fast_ms + slow_ms) / 2000.0
    slow_top = (slow_ms + (slow_ms - fast_ms) / 2) / 1000.0
    out = {"sent": len(d["d"]), "dark_s": round(light - dark, 3)}
    for k, name in ((1, "up"), (2, "down")):
        # The time each datagram got to its receiver, and its delay in this direction.
        rows = []
        for t, u, w in d["d"]:
            if name == "up":
                delay, at = u, None if u is None else t + u
            else:
                delay, at = w, None if w is None else t + u + w
            rows.append((t, delay, at))
        late = [r for r in rows if r[1] is None or r[1] > late_ms / 1000.0]
        arrivals = sorted(r[2] for r in rows if r[2] is not None and dark - 1 <= r[2] <= light + 3)
        gap = max((b - a for a, b in zip(arrivals, arrivals[1:])), default=None)
        fast = lambda r: r[1] is not None and r[1] < mid
        slow = lambda r: r[1] is not None and mid <= r[1] < slow_top
        moved = next((r[0] - dark for r in rows if r[0] >= dark and slow(r)), None)
        during = [r for r in rows if dark <= r[0] < light]
        steady = None
        for j, r in enumerate(during):
            if all(x[1] is not None and x[1] <= late_ms / 1000.0 for x in during[j:]):
                steady = r[0] - dark
                break
        back = next((r[0] - light for r in rows if r[0] >= light and fast(r)), None)
        ms = lambda x: None if x is None else round(x * 1000)
        out[name] = {
            "late": len(late),
            "lost": sum(1 for r in rows if r[1] is None),
            "late_in_outage": sum(1 for r in late if dark - 0.5 <= r[0] < light + 1),
            "gap_ms": ms(gap),
            "max_delay_ms": ms(max((r[1] for r in rows if r[1] is not None), default=None)),
            "moved_ms": ms(moved),
            "steady_ms": ms(steady),
            "back_ms": ms(back),
            "slow_path_share_after_light": round(
                sum(1 for r in rows if r[0] >= light + 1 and slow(r)) /
                max(1, sum(1 for r in rows if r[0] >= light + 1)), 3),
        }
    return out


def pauses(seconds, tick=0.005, least=0.040):
    """Stretches of LEAST or more in which a sleep of TICK did not return: the machine
    (or this process's CPU) was taken away, and every other process on it waited too."""
    out = []
    end = time.monotonic() + seconds
    last = time.monotonic()
    while last < end:
        time.sleep(tick)
        now = time.monotonic()
        if now - last >= least + tick:
            wall = time.time()
            out.append([round(wall - (now - last), 4), round(wall, 4)])
        last = now
    return out


def p99(xs):
    """Nearest-rank 99th percentile, None for no values."""
    xs = sorted(xs)
    return xs[max(0, -(-99 * len(xs) // 100) - 1)] if xs else None


def summary(d, dark, light, deadline_ms=150, detect_s=0.5, paused=()):
    """Per direction: "late_pct", the share of all datagrams not delivered within
    DEADLINE_MS one way (a voice or video frame that late is as good as lost, so the never
    delivered count alike); "lost", those never delivered; the p99 one-way delay in ms of
    the delivered ones sent before DARK ("p99_ms": both paths up), of those sent from
    DARK on ("p99_ms_from_dark": the outage and the recovery after it) and of those sent
    during the outage once DETECT_S has passed ("p99_ms_outage": the issue's "after the
    detection bound"; a carrier is judged stalled after one retransmission timeout, RTT
    plus TCP's 200 ms floor); "late_after_light", datagrams sent a second or more after
    LIGHT that were still late (a carrier that has not recovered).
    PAUSED: the host's pauses (pauses()): "pauses" counts those during the call, and
    "unpaused" has the same figures again without the datagrams a pause may have held
    (sent from DEADLINE_MS before a pause to its end; in both directions, as the pause
    stopped the sender, the proxies and the echo alike), so that what the proxies did
    is told apart from what the machine under them did."""
    start = d["start"]
    dark -= start
    light -= start
    rows = d["d"]
    out = {"sent": len(rows), "dark_at_s": round(dark, 3), "dark_s": round(light - dark, 3)}
    span = [(a - start - deadline_ms / 1000.0, b - start) for a, b in paused
            if b >= start and a - start <= rows[-1][0] + 1] if rows else []
    out["pauses"] = len(span)
    out.update(figures(rows, dark, light, deadline_ms, detect_s))
    clear = [r for r in rows if not any(a <= r[0] <= b for a, b in span)]
    out["unpaused"] = dict(sent=len(clear), **figures(clear, dark, light, deadline_ms, detect_s))
    return out


def figures(rows, dark, light, deadline_ms, detect_s):
    out = {}
    ms = lambda x: None if x is None else round(x * 1000, 1)
    for k, name in ((1, "up"), (2, "down")):
        late = lambda r: r[k] is None or r[k] > deadline_ms / 1000.0
        out[name] = {
            "late_pct": round(100.0 * sum(1 for r in rows if late(r)) / max(1, len(rows)), 2),
            "lost": sum(1 for r in rows if r[k] is None),
            "p99_ms": ms(p99([r[k] for r in rows if r[0] < dark and r[k] is not None])),
            "p99_ms_from_dark": ms(p99([r[k] for r in rows if r[0] >= dark and r[k] is not None])),
            "p99_ms_outage": ms(p99([r[k] for r in rows
                                     if dark + detect_s <= r[0] < light and r[k] is not None])),
            "late_after_light": sum(1 for r in rows if r[0] >= light + 1 and late(r)),
        }
    return out


if __name__ == "__main__":
    if sys.argv[1] == "summary":
        a = sys.argv
        print(json.dumps(summary(json.load(open(a[2])), float(a[3]), float(a[4]),
                                 float(a[5]) if len(a) > 5 else 150,
                                 paused=json.load(open(a[6])) if len(a) > 6 else ())))
    elif sys.argv[1] == "pauses":
        print(json.dumps(pauses(float(sys.argv[2]))))
    elif sys.argv[1] == "outage":
        a = sys.argv
        print(json.dumps(outage(json.load(open(a[2])), float(a[3]), float(a[4]), float(a[5]),
                                float(a[6]), float(a[7]) if len(a) > 7 else 150)))
    elif sys.argv[1] == "echo":
        echo(sys.argv[2], int(sys.argv[3]))
    else:
        call(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]),
             float(sys.argv[6]), float(sys.argv[7]) if len(sys.argv) > 7 else 5.0)
