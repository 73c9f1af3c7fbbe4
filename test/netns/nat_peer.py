#!/usr/bin/env python3
"""The parties of the NAT behaviour tests (test_nat_hairpin.sh), one UDP socket each.

  reflect ADDR PORT                 answer every datagram with "IP:PORT", its source as
                                    seen here (what STUN's binding request tells a client)
  probe LOCAL_IP LOCAL_PORT REFLECTOR_IP:PORT
                                    print this socket's public mapping, as the reflector saw it
  serve LOCAL_IP LOCAL_PORT READY OUT TIMEOUT
                                    after bind, create READY; write "SOURCE PAYLOAD" of the
                                    first datagram to OUT and answer it with "pong:PAYLOAD"
  ping LOCAL_IP LOCAL_PORT TIMEOUT TARGET_IP:PORT...
                                    send "ping" to each target, print "SOURCE PAYLOAD" of
                                    each answer (until one per target or TIMEOUT)
"""
import socket
import sys
import time


def parse(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def show(addr):
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def sock(ip, port):
    s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    return s


def main(argv):
    mode = argv[1]
    if mode == "reflect":
        s = sock(argv[2], int(argv[3]))
        while True:
            data, src = s.recvfrom(2048)
            s.sendto(show(src).encode(), src)
    s = sock(argv[2], int(argv[3]))
    if mode == "probe":
        s.settimeout(3)
        for _ in range(3):  # the first datagram makes the bindings; a loss is retried
            s.sendto(b"who", parse(argv[4]))
            try:
                print(s.recvfrom(2048)[0].decode())
                return 0
            except socket.timeout:
                continue
        return 1
    if mode == "serve":
        open(argv[4], "w").close()
        s.settimeout(float(argv[6]))
        try:
            data, src = s.recvfrom(2048)
        except socket.timeout:
            return 1
        with open(argv[5], "w") as out:
            out.write(f"{show(src)} {data.decode()}\n")
        s.sendto(b"pong:" + data, src)
        return 0
    if mode == "ping":
        targets = [parse(t) for t in argv[5:]]
        for t in targets:
            s.sendto(b"ping", t)
        deadline = time.monotonic() + float(argv[4])
        got = 0
        while got < len(targets) and time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, src = s.recvfrom(2048)
            except socket.timeout:
                break
            print(f"{show(src)} {data.decode()}")
            got += 1
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
