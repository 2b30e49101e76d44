"""hardener.render: turn resolved profile settings into main.cf, master.cf, aliases, the systemd
unit (and the transport table of an MX gateway), deterministically and atomically.

    files = render_files(settings)          # {"main.cf": b"...", ...}
    write_tree(Path("out"), files)
"""

from __future__ import annotations

from pathlib import Path

from hardener import __version__
from hardener.profiles import Settings
from hardener.profiles.keys import DEFAULT_DATA_DIRECTORY, DEFAULT_QUEUE_DIRECTORY
from hardener.profiles.values import check_injection
from hardener.render.environment import OMIT, make_environment, strip_omitted, wrap_comment
from hardener.render.output import write_tree

# output file -> template
TEMPLATES = {
    "main.cf": "postfix/main.cf.j2",
    "master.cf": "postfix/master.cf.j2",
    "aliases": "aliases.j2",
    "systemd/hardener-mta.service": "systemd/hardener-mta.service.j2",
}
TRANSPORT = ("transport", "postfix/transport.j2")


def render_files(settings: Settings) -> dict[str, bytes]:
    """Every output file's bytes; same settings, same bytes."""
    env = make_environment()
    values = settings.values
    deviations = settings.profile.deviations

    def deviation(param: str) -> str:
        reason = deviations.get(param)
        if not reason:
            return OMIT
        check_injection(reason)
        return wrap_comment(reason, f"# DEVIATION ({param}): ")

    context = {
        "v": values,
        "profile": settings.profile,
        "version": __version__,
        "deviation": deviation,
        "queue_directory": values["queue_directory"] or DEFAULT_QUEUE_DIRECTORY,
        "data_directory": values["data_directory"] or DEFAULT_DATA_DIRECTORY,
        "maillog_dir": str(Path(str(values["maillog_file"] or "/")).parent),
    }
    templates = dict(TEMPLATES)
    if values["relay_domains"]:
        templates[TRANSPORT[0]] = TRANSPORT[1]
    out: dict[str, bytes] = {}
    for name, template in sorted(templates.items()):
        text = strip_omitted(env.get_template(template).render(context))
        out[name] = text.encode("utf-8")
    return out


def render_to(settings: Settings, out_dir: Path) -> list[Path]:
    """Render and write under out_dir (all files or none); returns the paths written."""
    return write_tree(out_dir, render_files(settings))


__all__ = ["TEMPLATES", "render_files", "render_to", "write_tree"]
