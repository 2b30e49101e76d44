"""`hardener mta check`: Postfix's `postfix check` for this daemon; `serve` and `start` run it first.

What it does, as postfix-script's check-fatal/check-warn with postfix-files:
- creates missing queue directories and gives every one its owner and mode (queue/layout.py:
  root's pid/ and public/, the mail owner's 0700 rest);
- refuses, one line each naming the file and what is wrong:
  * configuration files (the config directory, main.cf, master.cf, the alias files of alias_maps
    and alias_database, TLS certificates) not owned by root or writable by group or others
    (whoever can write them can make the daemon relay, or hand root's log to anyone);
  * TLS private key files (smtpd_tls_key_file, smtpd_tls_chain_files, ... and the certificate file
    when it also holds the key) readable or writable by group or others;
  * queue files (maildrop/, incoming/, active/, deferred/, hold/, corrupt/, defer/, tmp/) not owned
    by the mail owner, or regular files another user could read or write (cleanup makes 0600);
  * pid/ and public/ not root's (root writes master.pid, holds master.lock and binds pickup's
    socket there; what another user left inside is never trusted: see daemon.read_pid);
  * a mail_owner that is root (uid or group 0) or shares its uid with another account (whatever
    the other account runs could read and rewrite every queue file; Postfix refuses the same).

When not run as root (a daemon started by an ordinary user owns everything itself), "root" and "the
mail owner" both mean the invoking user.

SECURITY: runs as root before anything else of the daemon; it only lstat()s and, through
QueueLayout.ensure (O_NOFOLLOW directory fds), creates and fixes directories: it opens no file.
The number of lines per directory is bounded (MAX_PER_DIRECTORY).
"""

from __future__ import annotations

import os
import pwd
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from hardener.errors import ConfigError
from hardener.mta.config.settings import MtaSettings, load_settings
from hardener.mta.queue.layout import (ALL_DIRS, QUEUE_NAMES, ROOT_OWNED, QueueLayout,
                                       QueueLayoutError, dir_mode)
from hardener.postfix.tables import INDEXED_TYPES, parse_spec

MAX_PER_DIRECTORY = 10
# files cleanup, qmgr and pickup write (Postfix's queue files are 0600 or 0700 "in progress")
FILE_QUEUES = QUEUE_NAMES + ("defer", "tmp")
CERT_PARAMETERS = ("smtpd_tls_cert_file", "smtpd_tls_eccert_file", "smtpd_tls_dcert_file",
                   "smtpd_tls_CAfile", "smtp_tls_cert_file", "smtp_tls_CAfile")
KEY_PARAMETERS = ("smtpd_tls_key_file", "smtpd_tls_eckey_file", "smtpd_tls_dkey_file",
                  "smtp_tls_key_file")
CHAIN_PARAMETERS = ("smtpd_tls_chain_files", "smtp_tls_chain_files")   # keys and certificates
ALIAS_PARAMETERS = ("alias_maps", "alias_database")
# what postmap/postalias build next to a source file
_BUILT_SUFFIX = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb", "dbm": ".pag",
                 "sdbm": ".pag"}


@dataclass(frozen=True)
class Problem:
    """One thing `check` refuses: the file and what is wrong with it."""

    path: str
    what: str

    def line(self) -> str:
        """'PATH: what' (one line)."""
        return f"{self.path}: {self.what}"


def run(config_dir: str | os.PathLike[str]) -> int:
    """`hardener mta check`: 0 when everything is right, else 2 with one line per problem on
    stderr. ConfigError (one line, exit 2) when the configuration itself cannot be loaded."""
    problems = check_installation(load_settings(config_dir))
    for problem in problems:
        print(f"hardener: error: {problem.line()}", file=sys.stderr)
    return 2 if problems else 0


def refuse_unsafe(settings: MtaSettings, *, create: bool = True) -> None:
    """For `serve` and `start`: ConfigError naming the first problem (and how many more) when
    `check` would refuse; creates and fixes the queue directories first when `create`."""
    problems = check_installation(settings, create=create)
    if problems:
        more = f" (and {len(problems) - 1} more: run `hardener mta check`)" \
            if len(problems) > 1 else ""
        raise ConfigError(problems[0].what + more, file=problems[0].path)


def check_installation(settings: MtaSettings, *, create: bool = True) -> list[Problem]:
    """Every problem `check` finds (empty: all is well); see the module docstring."""
    problems = check_mail_owner(settings)
    as_root = os.geteuid() == 0
    try:
        pw = pwd.getpwnam(settings.mail_owner)
        owner = (pw.pw_uid, pw.pw_gid) if as_root else (os.geteuid(), os.getegid())
    except KeyError:
        file, line = settings.where("mail_owner")
        return problems + [Problem(_at(file, line), f"mail_owner: no such user "
                                   f"{settings.mail_owner!r}")]
    root_uid = 0 if as_root else os.geteuid()
    layout = QueueLayout(settings.queue_directory)
    if create:
        try:
            if as_root and owner[0] != 0:
                layout.ensure(*owner)
            else:
                layout.ensure()
        except QueueLayoutError as exc:
            file, line = settings.where("queue_directory")
            problems.append(Problem(_at(file, line), f"queue_directory: {exc}"))
            return problems
    problems += check_config_files(settings, root_uid)
    problems += check_queue(layout, owner[0], root_uid)
    return problems


def check_mail_owner(settings: MtaSettings) -> list[Problem]:
    """mail_owner must not be root and must not share its uid with another account."""
    file, line = settings.where("mail_owner")
    where = _at(file, line)
    try:
        pw = pwd.getpwnam(settings.mail_owner)
    except KeyError:
        return []   # reported by the caller (and by load_settings)
    problems = []
    if pw.pw_uid == 0 or pw.pw_gid == 0:
        problems.append(Problem(where, f"mail_owner: {pw.pw_name} has uid {pw.pw_uid} and gid "
                                f"{pw.pw_gid}: it must not be root or in group 0"))
    others = sorted({p.pw_name for p in pwd.getpwall()
                     if p.pw_uid == pw.pw_uid and p.pw_name != pw.pw_name})
    if others and pw.pw_uid != 0:
        problems.append(Problem(where, f"mail_owner: {pw.pw_name} shares uid {pw.pw_uid} with "
                                f"{', '.join(others)}: give the mail owner an account of its own"))
    return problems


def check_config_files(settings: MtaSettings, root_uid: int) -> list[Problem]:
    """Configuration files root-owned and not group/other-writable; keys not group/other-readable."""
    main = settings.main
    config_dir = Path(settings.config_dir)
    problems = _config_problems(config_dir, root_uid)
    seen = {config_dir}
    files = [config_dir / "main.cf", config_dir / "master.cf"]
    for name in ALIAS_PARAMETERS:
        for spec in main.get_list(name):
            files += _table_files(spec)
    for name in CERT_PARAMETERS:
        if main.get(name):
            files.append(Path(main.get(name)))
    keys = [Path(main.get(name)) for name in KEY_PARAMETERS if main.get(name)]
    for name in CHAIN_PARAMETERS:
        keys += [Path(item) for item in main.get_list(name)]
    for path in files + keys:
        if path in seen or not path.is_absolute():
            continue
        seen.add(path)
        problems += _config_problems(path, root_uid, key=path in keys)
    return problems


def _table_files(spec: str) -> list[Path]:
    try:
        parsed = parse_spec(spec)
    except ConfigError:
        return []
    if parsed.type not in INDEXED_TYPES + ("",):
        return []
    source = Path(parsed.name)
    built = _BUILT_SUFFIX.get(parsed.type)
    return [source] + ([source.with_name(source.name + built)] if built else [])


def _config_problems(path: Path, root_uid: int, *, key: bool = False) -> list[Problem]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return []   # a missing file is the loader's business (it names the parameter)
    except OSError as exc:
        return [Problem(str(path), f"cannot check: {exc.strerror}")]
    mode = stat.S_IMODE(st.st_mode)
    problems = []
    if st.st_uid != root_uid:
        problems.append(Problem(str(path), f"owned by {_user(st.st_uid)}, not by "
                                f"{_user(root_uid)}"))
    if key and mode & 0o077:
        problems.append(Problem(str(path), f"private key readable or writable by group or "
                                f"others (mode {mode:04o}): chmod 600"))
    elif mode & 0o022:
        problems.append(Problem(str(path), f"writable by group or others (mode {mode:04o})"))
    return problems


def check_queue(layout: QueueLayout, owner_uid: int, root_uid: int) -> list[Problem]:
    """Directories with their owner and mode; queue files the mail owner's and private; pid/
    root's."""
    problems = []
    try:
        st = os.lstat(layout.root)
    except OSError as exc:
        return [Problem(str(layout.root), f"cannot check: {exc.strerror}")]
    if st.st_uid != root_uid or stat.S_IMODE(st.st_mode) & 0o022:
        problems.append(Problem(str(layout.root), f"queue directory must be {_user(root_uid)}'s "
                                f"and not group/other-writable (owner {_user(st.st_uid)}, mode "
                                f"{stat.S_IMODE(st.st_mode):04o})"))
    for name in ALL_DIRS:
        path = layout.dir(name)
        want_uid = root_uid if name in ROOT_OWNED else owner_uid
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            problems.append(Problem(str(path), "missing (run `hardener mta check` as root)"))
            continue
        except OSError as exc:
            problems.append(Problem(str(path), f"cannot check: {exc.strerror}"))
            continue
        if not stat.S_ISDIR(st.st_mode):
            problems.append(Problem(str(path), "not a directory"))
            continue
        if st.st_uid != want_uid or stat.S_IMODE(st.st_mode) != dir_mode(name):
            problems.append(Problem(str(path), f"must be {_user(want_uid)}'s with mode "
                                    f"{dir_mode(name):04o} (owner {_user(st.st_uid)}, mode "
                                    f"{stat.S_IMODE(st.st_mode):04o})"))
            continue
        if name in FILE_QUEUES:
            problems += _queue_files(path, owner_uid)
    return problems


def _queue_files(directory: Path, owner_uid: int) -> list[Problem]:
    problems: list[Problem] = []
    extra = 0
    try:
        entries = os.scandir(directory)
    except OSError as exc:
        return [Problem(str(directory), f"cannot check: {exc.strerror}")]
    with entries:
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue   # removed meanwhile (a running daemon)
            what = None
            if st.st_uid != owner_uid:
                what = f"queue file owned by {_user(st.st_uid)}, not by {_user(owner_uid)}"
            elif stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077:
                what = f"queue file readable or writable by group or others (mode " \
                       f"{stat.S_IMODE(st.st_mode):04o}, not 0600)"
            if what is None:
                continue
            if len(problems) < MAX_PER_DIRECTORY:
                problems.append(Problem(entry.path, what))
            else:
                extra += 1
    if extra:
        problems.append(Problem(str(directory), f"and {extra} more files like the above"))
    return problems


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _at(file: str, line: int | None) -> str:
    return f"{file}:{line}" if line else file
