"""master/privileges.py: what survives the privilege drop. The kernel clears a process's
parent-death signal when its credentials change, so a child that armed it before setuid would
outlive a master killed with -9; drop_privileges arms it again."""

from __future__ import annotations

import os
import signal

from hardener.mta.master.privileges import (drop_privileges, parent_death_signal,
                                            set_parent_death_signal)


def test_parent_death_signal_survives_the_drop(mail_owner):
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child drops for good; report over the pipe, never return into pytest
        try:
            os.close(rfd)
            set_parent_death_signal()
            before = parent_death_signal()
            drop_privileges(mail_owner)
            os.write(wfd, f"{before} {parent_death_signal()} {os.getuid()}".encode())
        finally:
            os._exit(0)
    os.close(wfd)
    report = os.read(rfd, 100).decode().split()
    os.close(rfd)
    os.waitpid(pid, 0)
    before, after, uid = (int(x) for x in report)
    assert before == signal.SIGTERM
    assert uid != 0
    assert after == signal.SIGTERM
