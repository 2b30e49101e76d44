"""The master's settings channel to a jailed child (smtpd, cleanup): a jailed process cannot read
main.cf, so on reload the master sends SIGHUP, then the settings it read down a socketpair.

Length-prefixed pickle: the root master is the only writer of that socket (it keeps the other end),
never the network or another child, so the child may unpickle it.
"""

from __future__ import annotations

import pickle
import socket
import struct

from hardener.mta import maillog

log = maillog.get_logger("master")

CONFIG_TIMEOUT = 5.0           # seconds to wait for the master's settings after its SIGHUP
_LEN = struct.Struct("!Q")
_MAX_CONFIG = 64 * 1024 * 1024


def send(sock: socket.socket, payload: object) -> None:
    """Master: send one reload payload (after the SIGHUP); bounded wait."""
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    sock.settimeout(CONFIG_TIMEOUT)
    try:
        sock.sendall(_LEN.pack(len(data)) + data)
    except OSError as exc:
        log.warning(f"cannot send the new configuration: {exc.strerror or exc}")


def read_latest(sock: socket.socket) -> object:
    """Child: the last payload waiting on `sock` (the first one waited for, the rest drained);
    None when none came in time."""
    payload = None
    timeout: float | None = CONFIG_TIMEOUT
    while True:
        sock.settimeout(timeout)
        try:
            head = _recv_exact(sock, _LEN.size)
        except (TimeoutError, BlockingIOError):
            return payload
        except OSError as exc:
            log.warning(f"cannot read the new configuration: {exc.strerror or exc}")
            return payload
        (length,) = _LEN.unpack(head)
        if length > _MAX_CONFIG:
            log.warning("configuration from the master too large; keeping the running one")
            return payload
        sock.settimeout(CONFIG_TIMEOUT)
        payload = pickle.loads(_recv_exact(sock, length))
        timeout = 0.0


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError("the master closed the configuration socket")
        buf += chunk
    return bytes(buf)
