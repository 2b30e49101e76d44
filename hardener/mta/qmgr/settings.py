"""The back half's typed view of main.cf/master.cf (qmgr, delivery agents, bounce, pickup), and the
factory that builds the queue manager for the daemon.

SECURITY: reads configuration files owned by root (main.cf, master.cf, the transport and alias
tables) before the privilege drop; trusts them as configuration but validates every value it uses:
a value the daemon cannot honour raises ConfigError naming file, line and parameter.

`load_back_settings(settings)` is registered in hardener.mta.config.settings (BACK section) and stores a
`BackSettings` in `settings.extra["back"]`. `build_queue_manager(settings, layout, cleanup)` and
`build_pickup(...)` are what the daemon calls.

Parameters honoured here (besides those FRONT reads): minimal_backoff_time, maximal_backoff_time,
queue_run_delay, maximal_queue_lifetime, bounce_queue_lifetime, qmgr_message_active_limit,
default_destination_concurrency_limit, TRANSPORT_destination_concurrency_limit,
initial_destination_concurrency,
smtp_destination_recipient_limit, relayhost, default_transport, relay_transport, local_transport,
transport_maps, smtp_helo_name, smtp_tls_security_level (smtp_enforce_tls, smtp_use_tls),
smtp_tls_CAfile, smtp_*_timeout, smtp_connection_cache_time_limit,
smtp_connection_reuse_time_limit, smtp_bind_address, smtp_mx_address_limit, alias_maps,
local_recipient_maps, recipient_delimiter, hardener_local_spool (Maildir spool root; default
queue_directory/spool), hardener_pickup_interval (maildrop poll, seconds; default 1),
hardener_qmgr_process (yes: qmgr and the delivery agents run in their own process; default yes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardener.errors import ConfigError
from hardener.mta.config.params import conf_int, conf_time, param_error
from hardener.mta.delivery.local import LocalSettings
from hardener.mta.delivery.routing import AGENTS, RoutingSettings
from hardener.mta.delivery.smtp import TLS_LEVELS, SmtpSettings
from hardener.mta.delivery.smtp_client import Timeouts
from hardener.mta.qmgr.manager import QmgrSettings
from hardener.mta.qmgr.retry import RetryPolicy
from hardener.postfix.tables import INDEXED_TYPES, parse_spec, read_aliases, read_table

_SUPPORTED_TLS = ("none", "may", "encrypt", "dane", "verify", "secure")


@dataclass
class BackSettings:
    """Typed settings of qmgr, the delivery agents and pickup."""

    qmgr: QmgrSettings
    routing: RoutingSettings
    smtp: SmtpSettings
    local: LocalSettings
    mx_address_limit: int
    myhostname: str
    myorigin: str
    message_size_limit: int
    pickup_interval: float
    qmgr_process: bool = True


def read_map(main: Any, name: str, spec: str) -> dict[str, str]:
    """A key -> value table from main.cf (hardener.postfix.tables reads the source text file)."""

    if parse_spec(spec).type not in INDEXED_TYPES:
        raise param_error(main, name, f"unsupported table {spec!r} (use texthash: or hash: "
                          "with the source text file)")
    try:
        return read_table(spec)
    except ConfigError as exc:
        if exc.file:
            raise
        raise param_error(main, name, exc.message) from None


def _services(master: Any) -> dict[str, str]:
    """master.cf service name -> delivery agent, for the agents hardener has."""
    services = {"smtp": "smtp", "relay": "smtp", "local": "local", "error": "error",
                "retry": "retry", "discard": "discard"}
    for svc in getattr(master, "services", master) or []:
        if getattr(svc, "type", "") != "unix":
            continue
        command = (svc.command.split() or [""])[0]
        if command == "error" and svc.name == "retry":
            command = "retry"  # Postfix's error(8) run as the retry service defers, not bounces
        if command in AGENTS:
            services[svc.name] = command
    return services


def _tls_level(main: Any) -> str:
    level = main.get("smtp_tls_security_level").lower()
    if not level:
        if main.is_set("smtp_enforce_tls") and main.get_bool("smtp_enforce_tls"):
            level = "encrypt"
        elif main.is_set("smtp_use_tls") and main.get_bool("smtp_use_tls"):
            level = "may"
        else:
            level = "none"
    if level not in TLS_LEVELS:
        raise param_error(main, "smtp_tls_security_level", f"unknown TLS security level {level!r}")
    if level not in _SUPPORTED_TLS:
        raise param_error(main, "smtp_tls_security_level",
                          f"level {level!r} is not supported by hardener's smtp client")
    return level


def _aliases(main: Any) -> dict[str, list[str]]:

    aliases: dict[str, list[str]] = {}
    for spec in main.get_list("alias_maps"):
        parsed = parse_spec(spec)
        if parsed.type in ("nis", "nisplus", "netinfo"):
            continue  # not available on this host, as Postfix's default nis:mail.aliases
        if parsed.type not in INDEXED_TYPES:
            raise param_error(main, "alias_maps", f"unsupported alias table {spec!r}")
        if not Path(parsed.name).exists():
            continue
        for name, targets in read_aliases(parsed.name).items():
            aliases.setdefault(name, targets)
    return aliases


def load_back_settings(settings: Any) -> None:
    """Read and validate the back half's parameters; stores BackSettings in settings.extra."""
    main = settings.main
    minimal = conf_time(main, "minimal_backoff_time", 1)
    maximal = conf_time(main, "maximal_backoff_time", 1)
    if maximal < minimal:
        raise param_error(main, "maximal_backoff_time",
                          f"smaller than minimal_backoff_time ({maximal}s < {minimal}s)")
    retry = RetryPolicy(minimal_backoff_time=minimal, maximal_backoff_time=maximal,
                        queue_run_delay=conf_time(main, "queue_run_delay", 1),
                        maximal_queue_lifetime=conf_time(main, "maximal_queue_lifetime"),
                        bounce_queue_lifetime=conf_time(main, "bounce_queue_lifetime"))
    services = _services(settings.master)
    default_limit = conf_int(main, "default_destination_concurrency_limit", 1)
    per_transport = {}
    for name in services:
        param = f"{name}_destination_concurrency_limit"
        if main.is_set(param):
            per_transport[name] = conf_int(main, param, 1)
    per_transport.setdefault("local", conf_int(main, "local_destination_concurrency_limit", 1))
    qmgr = QmgrSettings(retry=retry, active_limit=conf_int(main, "qmgr_message_active_limit", 1),
                        destination_concurrency=default_limit,
                        initial_concurrency=conf_int(main, "initial_destination_concurrency", 1),
                        transport_concurrency=per_transport,
                        destination_recipient_limit=conf_int(
                            main, "smtp_destination_recipient_limit", 1))
    transport_map: dict[str, str] = {}
    for spec in main.get_list("transport_maps"):
        for key, value in read_map(main, "transport_maps", spec).items():
            transport_map.setdefault(key, value)
    routing = RoutingSettings(
        mydestination=list(settings.mydestination), relay_domains=list(settings.relay_domains),
        relayhost=main.get("relayhost"), default_transport=main.get("default_transport"),
        relay_transport=main.get("relay_transport"), local_transport=main.get("local_transport"),
        transport_map=transport_map, services=services)
    for name in ("default_transport", "relay_transport", "local_transport"):
        transport = main.get(name).partition(":")[0]
        if transport not in services:
            raise param_error(main, name, f"transport {transport!r} is not a delivery agent "
                              f"hardener has (known: {', '.join(sorted(services))})")
    timeouts = Timeouts(connect=conf_time(main, "smtp_connect_timeout", 1),
                        helo=conf_time(main, "smtp_helo_timeout", 1),
                        mail=conf_time(main, "smtp_mail_timeout", 1),
                        rcpt=conf_time(main, "smtp_rcpt_timeout", 1),
                        data_init=conf_time(main, "smtp_data_init_timeout", 1),
                        data_xfer=conf_time(main, "smtp_data_xfer_timeout", 1),
                        data_done=conf_time(main, "smtp_data_done_timeout", 1),
                        quit=conf_time(main, "smtp_quit_timeout", 1),
                        rset=conf_time(main, "smtp_rset_timeout", 1),
                        starttls=conf_time(main, "smtp_starttls_timeout", 1))
    smtp = SmtpSettings(helo_name=main.get("smtp_helo_name") or settings.myhostname,
                        tls_security_level=_tls_level(main),
                        tls_cafile=main.get("smtp_tls_CAfile"),
                        timeouts=timeouts,
                        cache_time_limit=conf_time(main, "smtp_connection_cache_time_limit"),
                        reuse_time_limit=conf_time(main, "smtp_connection_reuse_time_limit", 1),
                        bind_address=main.get("smtp_bind_address"))
    if main.is_set("hardener_local_spool"):
        spool = Path(main.get("hardener_local_spool"))
        if not spool.is_absolute():
            raise param_error(main, "hardener_local_spool", "must be an absolute path")
    else:
        spool = Path(settings.queue_directory) / "spool"
    local_domains = list(settings.mydestination)
    local = LocalSettings(spool_dir=spool, aliases=_aliases(main),
                          local_domains=lambda d: not d or d.lower() in local_domains,
                          recipient_delimiter=main.get("recipient_delimiter"),
                          require_known_user=bool(main.get_list("local_recipient_maps")),
                          myhostname=settings.myhostname)
    interval = 1.0
    if main.is_set("hardener_pickup_interval"):
        interval = float(conf_time(main, "hardener_pickup_interval", 1))
    settings.extra["back"] = BackSettings(
        qmgr=qmgr, routing=routing, smtp=smtp, local=local,
        mx_address_limit=conf_int(main, "smtp_mx_address_limit", 1),
        myhostname=settings.myhostname, myorigin=settings.myorigin,
        message_size_limit=settings.message_size_limit, pickup_interval=interval,
        qmgr_process=(main.get_bool("hardener_qmgr_process")
                      if main.is_set("hardener_qmgr_process") else True))


def build_queue_manager(settings: Any, layout: Any, cleanup: Any) -> Any:
    """The queue manager for the daemon: a QmgrProcess running it in a child process.

    The daemon passes `qmgr.wake` as cleanup's on_commit callback and runs `await qmgr.run()`;
    `await qmgr.stop()` at shutdown. Call it after the privilege drop: the child inherits the
    daemon's (unprivileged) identity. `hardener_qmgr_process = no` keeps it in the daemon's process.
    """
    from hardener.mta.qmgr.process import QmgrProcess

    back: BackSettings = settings.extra["back"]
    if not back.qmgr_process:
        return make_queue_manager(settings, layout, cleanup)

    def make() -> Any:
        # In the child: a cleanup of its own (the parent's worker threads did not survive fork).
        from hardener.mta.cleanup.service import Cleanup

        own = Cleanup(layout, cleanup.settings)
        qmgr = make_queue_manager(settings, layout, own)
        own.on_commit = qmgr.wake
        qmgr.close = own.close
        return qmgr

    return QmgrProcess(make)


def make_queue_manager(settings: Any, layout: Any, cleanup: Any) -> Any:
    """A QueueManager with its delivery agents and bounce wired to `cleanup` (in this process)."""
    # Imported here, in the process that runs them: the master and the processes forked before
    # the qmgr child do not carry the delivery agents (dnspython alone is about 5 MB).
    from hardener.mta.bounce import Bouncer
    from hardener.mta.delivery.error import ErrorAgent
    from hardener.mta.delivery.local import LocalAgent
    from hardener.mta.delivery.nexthop import NextHopResolver
    from hardener.mta.delivery.routing import Router
    from hardener.mta.delivery.smtp import SmtpAgent
    from hardener.mta.qmgr.manager import QueueManager, make_resubmitter

    back: BackSettings = settings.extra["back"]
    os.makedirs(back.local.spool_dir, mode=0o700, exist_ok=True)
    error = ErrorAgent()
    agents = {"smtp": SmtpAgent(back.smtp, NextHopResolver(mx_address_limit=back.mx_address_limit)),
              "local": LocalAgent(back.local, make_resubmitter(cleanup)),
              "error": error, "retry": error, "discard": error}
    return QueueManager(layout, back.qmgr, Router(back.routing), agents,
                        Bouncer(cleanup, back.myhostname))


def build_pickup(settings: Any, layout: Any, cleanup: Any) -> Any:
    """The maildrop pickup service for the daemon (`await pickup.run()`, `pickup.stop()`)."""
    from hardener.mta.pickup import Pickup

    back: BackSettings = settings.extra["back"]
    return Pickup(layout, cleanup, myorigin=back.myorigin,
                  size_limit=back.message_size_limit, interval=back.pickup_interval)
