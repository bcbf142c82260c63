"""A free loopback port for a throwaway server (the OS picks it; a race with another
process taking it before the server binds is possible but rare on a test machine)."""

from __future__ import annotations

import socket


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
