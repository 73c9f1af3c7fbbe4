#!/usr/bin/env python3
"""What a client socket hears of an ICMP error, for test_icmp_transparency.sh.

  refused ADDR PORT     connect()ed socket, one datagram to a closed port: prints the
                        seconds until recv() failed with ECONNREFUSED; exit 1 otherwise.
  toobig ADDR PORT MTU  DF socket (IP_PMTUDISC_DO), datagrams of 1400 bytes: waits until
                        the socket's path MTU (IP_MTU / IPV6_MTU) is MTU and a send of
                        1400 bytes fails with EMSGSIZE; prints the MTU; exit 1 otherwise.
"""
import errno
import socket
import sys
import time

IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_MTU = 10, 2, 14
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO, IPV6_MTU = 23, 2, 24


def sock(addr):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return socket.socket(fam, socket.SOCK_DGRAM), fam


def refused(addr, port):
    s, _ = sock(addr)
    s.connect((addr, port))
    s.settimeout(5)
    t0 = time.monotonic()
    s.send(b"query")
    try:
        s.recv(100)
    except ConnectionRefusedError:
        print("%.3f" % (time.monotonic() - t0))
        return 0
    except socket.timeout:
        print("timeout: no error within 5 s", file=sys.stderr)
        return 1
    print("a reply came instead of an error", file=sys.stderr)
    return 1


def toobig(addr, port, mtu):
    s, fam = sock(addr)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO)
        level, opt = socket.IPPROTO_IPV6, IPV6_MTU
    else:
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
        level, opt = socket.IPPROTO_IP, IP_MTU
    s.connect((addr, port))
    deadline = time.monotonic() + 5
    seen = 0
    while time.monotonic() < deadline:
        try:
            s.send(b"x" * 1400)
        except OSError as e:
            if e.errno != errno.EMSGSIZE:
                raise
            seen = s.getsockopt(level, opt)
            if seen == mtu:
                print(seen)
                return 0
        time.sleep(0.1)
    print("no EMSGSIZE with path MTU %d within 5 s (IP_MTU %d)"
          % (mtu, s.getsockopt(level, opt)), file=sys.stderr)
    return 1


if __name__ == "__main__":
    if sys.argv[1] == "refused":
        sys.exit(refused(sys.argv[2], int(sys.argv[3])))
    sys.exit(toobig(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
