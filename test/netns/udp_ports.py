# Sends one datagram from each of N consecutive source ports, for the tenant tests.
#   udp_ports.py churn BASE N HOST PORT [SRC]  bind, send, close: N new bindings, none kept
#   udp_ports.py round BASE N HOST PORT [SRC]  keep the N sockets, wait for every echo
#                                              (5 s), print how many came back to their
#                                              own socket
# SRC: the source address (default: the kernel's choice).
import select, socket, sys, time

mode, base, n, host, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
src = sys.argv[6] if len(sys.argv) > 6 else ""
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
if mode == "churn":
    for i in range(n):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((src, base + i))
        s.sendto(b"churn", (host, port))
        s.close()
        if i % 500 == 499:
            time.sleep(0.02)  # paced a little, so the tunnel turns no new flow away
    print(n)
    sys.exit(0)
socks = {}
for i in range(n):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, base + i))
    s.setblocking(False)
    socks[s.fileno()] = (s, b"port %d" % (base + i))
for s, msg in socks.values():
    s.sendto(msg, (host, port))
got, deadline = set(), time.time() + 5
poll = select.poll()
for fd in socks:
    poll.register(fd, select.POLLIN)
while len(got) < n and time.time() < deadline:
    for fd, _ in poll.poll(100):
        s, msg = socks[fd]
        try:
            data = s.recv(2048)
        except BlockingIOError:
            continue
        if data == msg:
            got.add(fd)
print(len(got))
