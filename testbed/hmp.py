#!/usr/bin/env python3
"""Tiny QEMU human-monitor (HMP) client over a unix socket.

usage: hmp.py SOCKET COMMAND [COMMAND...]
Sends each command, prints "(qemu) COMMAND" and QEMU's answer. Exit status 1 if an
answer looks like an error (QEMU's HMP has no status codes; errors are text).
"""
import re
import socket
import sys
import time


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.settimeout(0.3)

    def drain(wait: float) -> str:
        buf = b""
        end = time.monotonic() + wait
        while time.monotonic() < end:
            try:
                d = s.recv(65536)
            except socket.timeout:
                if buf.endswith(b"(qemu) "):
                    break
                continue
            if not d:
                break
            buf += d
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", buf.decode(errors="replace"))
        return text.replace("\r", "")

    drain(2.0)  # banner + first prompt
    bad = False
    for cmd in sys.argv[2:]:
        s.sendall((cmd + "\n").encode())
        lines = drain(10.0).split("\n")
        # the first line is the terminal echo of the command, the last the next prompt
        answer = [l for l in lines[1:] if l.strip() and not l.startswith("(qemu)")]
        print("(qemu) " + cmd)
        for l in answer:
            print(l)
        if any(re.search(r"error|failed|not found|invalid", l, re.I) for l in answer):
            bad = True
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
