"""Misbehaving TCP servers for the audit's fault tests.

These are fakes, on purpose: no real SMTP server can be made to speak garbage, hang up at a chosen
moment or flood a reply on demand. Each runs an asyncio server in its own thread on a loopback
address, bounded in what it sends, and stops at the end of the test. `backlog_full_port()` is real
kernel behaviour instead: a listening socket whose accept queue is full drops further SYNs, which
is what a filtering firewall looks like to a client.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, then say nothing (until the client goes away)."""
    await reader.read()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and close at once: an early disconnect before any greeting."""
    writer.close()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Speak HTTP instead of SMTP."""
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    await reader.read()


async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A greeting with thousands of continuation lines (bounded: 5000)."""
    try:
        for i in range(5000):
            writer.write(b"220-flood line %d\r\n" % i)
            if i % 100 == 0:
                await writer.drain()
    except ConnectionError:
        return
    writer.close()


async def long_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A greeting line of 100,000 characters."""
    try:
        writer.write(b"220 " + b"x" * 100_000 + b"\r\n")
        await writer.drain()
    except ConnectionError:
        return
    await reader.read()


async def greet_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A proper greeting and EHLO reply, then close on the next command: checks break half way."""
    writer.write(b"220 fault.test ESMTP\r\n")
    await writer.drain()
    line = await reader.readline()
    if line.upper().startswith(b"EHLO"):
        writer.write(b"250-fault.test\r\n250 8BITMIME\r\n")
        await writer.drain()
        await reader.readline()
    writer.close()


class FaultServer:
    """One handler served on address:port from a background thread."""

    def __init__(self, handler: Handler, address: str) -> None:
        self.handler = handler
        self.address = address
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._guarded, self.address, 0), self._loop)
        self._server = future.result(10)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _guarded(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(self.handler(reader, writer), 60)
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        async def _close() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(_close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextmanager
def fault_server(handler: Handler, address: str) -> Iterator[FaultServer]:
    """Run a fault server for the duration of the block."""
    server = FaultServer(handler, address)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def backlog_full_port(address: str) -> Iterator[int]:
    """A port whose accept queue is full: new connections get no SYN-ACK (like a filter)."""
    listener = socket.socket()
    listener.bind((address, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):  # Linux accepts backlog+1 connections into the queue; fill it
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect((address, port))
            except BlockingIOError:
                pass
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
