"""The smtpd -> cleanup channel: records over one SOCK_SEQPACKET socketpair per smtpd service.

The master creates the pair and keeps both ends, so either process can be restarted alone and the
new one finds the channel where the old one left it. One packet carries one or more records:

    record = type (1 byte) + stream id (32 bits) + payload length (32 bits) + payload

A stream is one message. smtpd -> cleanup: BEGIN (envelope: JSON object), RCPT (one recipient:
JSON [address, orcpt, notify]), DATA (content, at most MAX_DATA bytes), COMMIT, ABORT; RESET
(stream 0, payload: a nonce) after smtpd starts: cleanup forgets that channel's streams and
answers RESET_ACK with the nonce. cleanup -> smtpd: exactly one OK (queue id) or FAIL (reason) per
COMMIT, sent only after the group commit made the file durable (so the 250 keeps its guarantee);
RESTART (stream 0) after cleanup starts: smtpd fails what it was waiting for.

Several records go in one packet (a small message is BEGIN+RCPT+DATA+COMMIT in one send): the
packet is the unit the kernel delivers whole or not at all, so nothing is ever half-read.

SECURITY: cleanup treats everything here as untrusted input (see hardener/mta/cleanup/server.py:
every field is checked); nothing here is unpickled or evaluated.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

BEGIN, RCPT, DATA, COMMIT, ABORT, RESET = 1, 2, 3, 4, 5, 6
OK, FAIL, RESET_ACK, RESTART = 16, 17, 18, 19

MAX_DATA = 64 * 1024              # content bytes per DATA record
MAX_PACKET = 256 * 1024           # one packet (several records); the socket buffers hold many
SOCKET_BUFFER = 4 * 1024 * 1024   # per direction (SO_SNDBUFFORCE/SO_RCVBUFFORCE as root)
_HEAD = struct.Struct("!BII")
HEAD_SIZE = _HEAD.size


class ChannelError(Exception):
    """A packet that does not parse (a broken or hostile peer)."""


def record(kind: int, stream: int, payload: bytes = b"") -> bytes:
    """One record, ready to be joined with others into a packet."""
    return _HEAD.pack(kind, stream, len(payload)) + payload


def records(packet: bytes) -> Iterator[tuple[int, int, bytes]]:
    """The (type, stream id, payload) records of one packet; ChannelError if it is malformed."""
    view = memoryview(packet)
    offset = 0
    while offset < len(view):
        if len(view) - offset < HEAD_SIZE:
            raise ChannelError("truncated record header")
        kind, stream, length = _HEAD.unpack_from(view, offset)
        offset += HEAD_SIZE
        if length > len(view) - offset:
            raise ChannelError("record longer than its packet")
        yield kind, stream, bytes(view[offset:offset + length])
        offset += length


def make_pair() -> tuple[socket.socket, socket.socket]:
    """(smtpd's end, cleanup's end): a SEQPACKET pair with buffers for many packets, both
    non-blocking and not inherited across exec."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for sock in (a, b):
        for force, plain in ((getattr(socket, "SO_SNDBUFFORCE", 32), socket.SO_SNDBUF),
                             (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)   # root: above wmem_max
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
        sock.setblocking(False)
    return a, b


def recv_packets(sock: socket.socket, limit: int) -> tuple[list[bytes], bool]:
    """Up to `limit` waiting packets (non-blocking) and whether the peer end is gone."""
    packets: list[bytes] = []
    while len(packets) < limit:
        try:
            data, _anc, flags, _addr = sock.recvmsg(MAX_PACKET + 1)
        except (BlockingIOError, InterruptedError):
            return packets, False
        except ConnectionError:
            return packets, True
        if not data:
            return packets, True
        if flags & socket.MSG_TRUNC or len(data) > MAX_PACKET:
            raise ChannelError("packet larger than MAX_PACKET")
        packets.append(data)
    return packets, False
