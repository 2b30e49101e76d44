"""`--trusted CIDR`: the networks meant to relay, as lint, audit and scan take them.

A network is ADDRESS/LENGTH or one address, IPv6 also in Postfix's [addr]/len form. Host bits must
be clear, as Postfix requires in mynetworks ('127.0.0.1/8' is refused with a hint at 127.0.0.0/8).
"""

from __future__ import annotations

import ipaddress

from hardener.errors import InputError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(value: str, option: str = "--trusted") -> Network:
    """One network; InputError, one line naming the option and the value, otherwise."""
    text = value.strip()
    spec = text.replace("]/", "/").strip("[]")
    try:
        return ipaddress.ip_network(spec, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(spec, strict=False)
        except ValueError:
            raise InputError(f"{value!r} is not a network (expected ADDRESS/LENGTH, e.g. "
                             f"10.1.2.0/24, or one address)", field=option) from None
        raise InputError(f"{value!r} is not a network: host bits are set (did you mean {loose}?)",
                         field=option) from None


def parse_trusted(values: list[str] | None, option: str = "--trusted") -> tuple[Network, ...]:
    """Every --trusted value as a network (see parse_network), duplicates dropped, order kept."""
    return tuple(dict.fromkeys(parse_network(v, option) for v in values or []))
