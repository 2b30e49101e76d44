"""Queue tools: list (like mailq), flush, delete, hold and release messages.

SECURITY: run by the administrator (root or the mail owner) against the queue directory of a main.cf;
queue ids given on the command line are validated before they become file names, and queue files are
parsed with the same strict reader as qmgr (a corrupt file is listed as such, never trusted). The
tools only rename and unlink files inside the queue directory; a running daemon notices moved files
at its next incoming/ scan (at most a second). Run as root, every operation runs with the rights of
the queue's owner (the owner of incoming/, normally the mail owner; privileges.acting_as), as
Postfix's postsuper runs as the mail owner: the queue subdirectories are the mail owner's to write,
so a link planted there must meet the mail owner's rights, not root's. The flush marker is created
O_EXCL|O_NOFOLLOW and time stamps are set on the name itself (no symlink followed).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from hardener.errors import InputError
from hardener.mta.master.privileges import acting_as
from hardener.mta.qmgr.manager import FLUSH_MARKER
from hardener.mta.queue.file import QueueFileError, read_envelope
from hardener.mta.queue.layout import QueueLayout, valid_queue_id
from hardener.mta.queue.state import DEFERRED, QueueState
from hardener.mta.safe_open import create_exclusive, open_dir
from hardener.postfix.maincf import load_main_cf

LISTED_QUEUES = ("incoming", "active", "deferred", "hold")
_MARK = {"active": "*", "hold": "!"}


@dataclass
class QueuedRecipient:
    """One recipient of a queued message and its delivery state."""

    address: str
    status: str = "pending"
    reason: str = ""


@dataclass
class QueueEntry:
    """One queued message as the queue tools show it."""

    queue_id: str
    queue_name: str
    size: int
    arrival: float
    sender: str
    recipients: list[QueuedRecipient] = field(default_factory=list)
    attempts: int = 0
    last_reason: str = ""
    next_attempt: float = 0.0
    corrupt: str = ""

    def to_dict(self) -> dict:
        """The JSON form (`--format json`)."""
        return {
            "queue_id": self.queue_id, "queue_name": self.queue_name,
            "message_size": self.size, "arrival_time": int(self.arrival),
            "sender": self.sender,
            "recipients": [{"address": r.address, "status": r.status, "delay_reason": r.reason}
                           for r in self.recipients],
            "attempts": self.attempts, "last_reason": self.last_reason,
            "next_attempt": int(self.next_attempt) if self.next_attempt else None,
            **({"corrupt": self.corrupt} if self.corrupt else {}),
        }


class QueueTools:
    """Operations on the queue directory `root`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.layout = QueueLayout(root)
        if not self.layout.root.is_dir():
            raise InputError(f"queue directory {root} does not exist")
        self.state = QueueState(self.layout.dir("defer"))
        self.owner = _tree_owner(self.layout)

    def _as_owner(self):
        """The rights every operation runs with (see the module docstring)."""
        return acting_as(*self.owner) if self.owner else contextlib.nullcontext()

    def entries(self) -> list[QueueEntry]:
        """Every message in incoming/, active/, deferred/ and hold/, oldest first."""
        out: list[QueueEntry] = []
        with self._as_owner():
            for queue in LISTED_QUEUES:
                for qid in self.layout.list(queue):
                    out.append(self._entry(queue, qid))
        return sorted(out, key=lambda e: (e.arrival, e.queue_id))

    def _entry(self, queue: str, qid: str) -> QueueEntry:
        path = self.layout.path(queue, qid)
        try:
            env = read_envelope(path)
        except QueueFileError as exc:
            try:
                st = path.lstat()
                size, arrival = st.st_size, st.st_mtime
            except OSError:
                size, arrival = 0, 0.0
            return QueueEntry(qid, queue, size, arrival, "", corrupt=str(exc))
        st = self.state.load(qid)
        recipients = []
        for r in env.recipients:
            rs = st.recipients.get(r.address)
            if rs is None:
                recipients.append(QueuedRecipient(r.address))
            else:
                recipients.append(QueuedRecipient(r.address, rs.status,
                                                  rs.reason if rs.status == DEFERRED else ""))
        return QueueEntry(qid, queue, env.size, env.arrival, env.sender, recipients,
                          st.attempts, st.last_reason, st.next_attempt)

    def _find(self, qid: str, queues: tuple[str, ...] = LISTED_QUEUES) -> str:
        if not valid_queue_id(qid):
            raise InputError(f"malformed queue id {qid!r}", field="ID")
        for queue in queues:
            if os.path.lexists(self.layout.path(queue, qid)):
                return queue
        raise InputError(f"no message {qid} in the {'/'.join(queues)} queue(s)", field="ID")

    def flush(self) -> int:
        """Make every deferred message due now and move it to incoming/; returns how many.

        Also leaves a flush request (defer/.flush) for a running daemon, whose qmgr then forgets the
        next hops it marked dead, so the flushed mail is really tried at once.
        """

        with self._as_owner():
            try:
                os.close(create_exclusive(self.layout.dir("defer") / FLUSH_MARKER, 0o600))
            except FileExistsError:
                pass   # a request is pending already
            moved = 0
            for qid in self.layout.list("deferred"):
                st = self.state.load(qid)
                if st.attempts:
                    st.next_attempt = 0.0
                    self.state.save(qid, st)
                try:
                    # due now (qmgr reads the mtime); on the name itself, never through a link
                    os.utime(self.layout.path("deferred", qid), follow_symlinks=False)
                    self.layout.move(qid, "deferred", "incoming")
                    moved += 1
                except FileNotFoundError:
                    continue
        return moved

    def delete(self, qid: str) -> str:
        """Remove message `qid` (from any queue, hold included); returns the queue it was in."""
        with self._as_owner():
            queue = self._find(qid)
            os.unlink(self.layout.path(queue, qid))
            self.state.remove(qid)
        return queue

    def hold(self, qid: str) -> str:
        """Put `qid` on hold (qmgr ignores hold/); returns the queue it came from."""
        with self._as_owner():
            queue = self._find(qid, ("incoming", "active", "deferred"))
            self.layout.move(qid, queue, "hold")
        return queue

    def release(self, qid: str) -> None:
        """Release `qid` from hold/ into incoming/ for an immediate attempt."""
        with self._as_owner():
            self._find(qid, ("hold",))
            st = self.state.load(qid)
            if st.attempts:
                st.next_attempt = 0.0
                self.state.save(qid, st)
            self.layout.move(qid, "hold", "incoming")


def _tree_owner(layout: QueueLayout) -> tuple[int, int] | None:
    """(uid, gid) of incoming/ when root runs the tools on a tree another user owns, else None.
    incoming/ is opened O_NOFOLLOW: only root can have made it, in root's queue directory."""
    if os.geteuid() != 0:
        return None
    try:
        fd = open_dir(layout.dir("incoming"))
    except FileNotFoundError:
        return None
    except OSError as exc:   # a symlink included: refused, never followed
        raise InputError(f"cannot open {layout.dir('incoming')}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return (st.st_uid, st.st_gid) if st.st_uid != 0 else None


def format_mailq(entries: list[QueueEntry]) -> str:
    """The listing in mailq's layout (id with * active / ! hold, size, arrival, sender, recipients)."""
    if not entries:
        return "Mail queue is empty\n"
    lines = ["-Queue ID-            --Size-- ----Arrival Time---- -Sender/Recipient-------"]
    total = 0
    for e in entries:
        total += e.size
        when = time.strftime("%a %b %d %H:%M:%S", time.localtime(e.arrival))
        qid = e.queue_id + _MARK.get(e.queue_name, "")
        lines.append(f"{qid:<21} {e.size:>8} {when:<20}  {e.sender or 'MAILER-DAEMON'}")
        if e.corrupt:
            lines.append(f"{'':44}(corrupt queue file: {e.corrupt})")
        if e.attempts and e.last_reason:
            lines.append(f"({e.last_reason}; {e.attempts} attempt{'s' if e.attempts != 1 else ''})")
        for r in e.recipients:
            if r.status == "done":
                continue
            lines.append(f"{'':44}{r.address}")
        lines.append("")
    kbytes = (total + 1023) // 1024
    lines.append(f"-- {kbytes} Kbytes in {len(entries)} Request{'s' if len(entries) != 1 else ''}.")
    return "\n".join(lines) + "\n"


def queue_directory(config_dir: str | os.PathLike[str]) -> Path:
    """queue_directory from DIR/main.cf (ConfigError/InputError when it cannot be read)."""

    main = load_main_cf(Path(config_dir) / "main.cf")
    return Path(main.get("queue_directory"))
