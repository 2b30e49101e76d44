"""Per-message delivery state: the sidecar file `defer/QID` next to a queue file.

SECURITY: written and read only by the daemon (qmgr, queue tools run as root or the mail owner). The
content is produced by this module, but a sidecar is still parsed defensively: anything malformed is
treated as "no history" (the message is retried from scratch, which may duplicate mail but never loses
it). The queue file itself is never rewritten; everything that changes over a message's life (attempts,
next try, per-recipient outcome) lives here.

Format: one JSON object, written atomically (temporary file, fsync, rename):

    {"version": 1, "attempts": 2, "first_attempt": 1700000000.0, "last_attempt": 1700000300.0,
     "next_attempt": 1700000900.0, "delay": 600, "last_reason": "connect to ...: Connection refused",
     "recipients": {"a@example.com": {"status": "done", "dsn": "2.0.0", "reason": "250 ok"},
                    "b@example.com": {"status": "deferred", "dsn": "4.4.1", "reason": "..."}}}

Recipient status is one of "done" (delivered, or bounced and the bounce queued: nothing left to do),
"deferred" (retry later) or "bounced" (permanent failure whose DSN is not yet queued).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from hardener.mta.queue.layout import valid_queue_id as valid_qid


STATE_VERSION = 1
DONE = "done"
DEFERRED = "deferred"
BOUNCED = "bounced"
_STATUSES = frozenset({DONE, DEFERRED, BOUNCED})


@dataclass
class RecipientState:
    """What happened to one recipient so far."""

    status: str
    dsn: str = ""
    reason: str = ""


@dataclass
class MessageState:
    """Retry history of one message (attempts, times, last reason, per-recipient outcome)."""

    attempts: int = 0
    first_attempt: float = 0.0
    last_attempt: float = 0.0
    next_attempt: float = 0.0
    delay: float = 0.0
    last_reason: str = ""
    recipients: dict[str, RecipientState] = field(default_factory=dict)

    def pending(self, all_recipients: list[str]) -> list[str]:
        """The recipients still to be tried (not done, not already bounced)."""
        return [r for r in all_recipients
                if r not in self.recipients or self.recipients[r].status == DEFERRED]

    def to_dict(self) -> dict:
        """The JSON form written to disk."""
        return {
            "version": STATE_VERSION,
            "attempts": self.attempts,
            "first_attempt": self.first_attempt,
            "last_attempt": self.last_attempt,
            "next_attempt": self.next_attempt,
            "delay": self.delay,
            "last_reason": self.last_reason,
            "recipients": {addr: {"status": r.status, "dsn": r.dsn, "reason": r.reason}
                           for addr, r in self.recipients.items()},
        }

    @classmethod
    def from_dict(cls, data: object) -> "MessageState":
        """Parse the JSON form; raises ValueError on anything unexpected."""
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError("not a version 1 state object")
        recipients: dict[str, RecipientState] = {}
        raw = data.get("recipients", {})
        if not isinstance(raw, dict):
            raise ValueError("recipients is not an object")
        for addr, entry in raw.items():
            if not isinstance(addr, str) or not isinstance(entry, dict):
                raise ValueError("bad recipient entry")
            status = entry.get("status")
            if status not in _STATUSES:
                raise ValueError(f"bad recipient status {status!r}")
            recipients[addr] = RecipientState(status, str(entry.get("dsn", "")),
                                              str(entry.get("reason", "")))
        return cls(
            attempts=int(data.get("attempts", 0)),
            first_attempt=float(data.get("first_attempt", 0.0)),
            last_attempt=float(data.get("last_attempt", 0.0)),
            next_attempt=float(data.get("next_attempt", 0.0)),
            delay=float(data.get("delay", 0.0)),
            last_reason=str(data.get("last_reason", "")),
            recipients=recipients,
        )


class QueueState:
    """Reads and writes the sidecars in `defer_dir` (normally queue_directory/defer)."""

    def __init__(self, defer_dir: Path) -> None:
        self.defer_dir = Path(defer_dir)

    def _path(self, qid: str) -> Path:
        if not valid_qid(qid):
            raise ValueError(f"invalid queue id {qid!r}")
        return self.defer_dir / qid

    def load(self, qid: str) -> MessageState:
        """The state of `qid`; a fresh state when there is none or it is unreadable."""
        try:
            with open(self._path(qid), "rb") as fh:
                raw = fh.read(1 << 20)
            return MessageState.from_dict(json.loads(raw))
        except (OSError, ValueError, TypeError):
            return MessageState()

    def exists(self, qid: str) -> bool:
        """Whether a sidecar exists for `qid`."""
        return self._path(qid).exists()

    def save(self, qid: str, state: MessageState, *, durable: bool = True) -> None:
        """Write the state atomically (temporary file + rename; fsync when `durable`)."""
        path = self._path(qid)
        tmp = path.with_name(f".{qid}.{os.getpid()}.tmp")
        data = json.dumps(state.to_dict(), sort_keys=True).encode()
        try:
            os.unlink(tmp)   # a stale temporary name from a crashed run
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def remove(self, qid: str) -> None:
        """Forget `qid` (no error when there is no sidecar)."""
        try:
            os.unlink(self._path(qid))
        except FileNotFoundError:
            pass


def now() -> float:
    """Wall-clock time used for queue timestamps (seconds since the epoch)."""
    return time.time()
