"""This machine's interface addresses, read as Postfix reads them (getifaddrs(3)).

Postfix derives the default `mynetworks` from every address on an interface that is up, IPv4
first, then IPv6, each in getifaddrs order, skipping unspecified addresses (inet_addr_local.c).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import socket

IFF_UP = 0x1

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class _Sockaddr(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("data", ctypes.c_ubyte * 26)]


class _Ifaddrs(ctypes.Structure):
    pass


_Ifaddrs._fields_ = [
    ("ifa_next", ctypes.POINTER(_Ifaddrs)),
    ("ifa_name", ctypes.c_char_p),
    ("ifa_flags", ctypes.c_uint),
    ("ifa_addr", ctypes.POINTER(_Sockaddr)),
    ("ifa_netmask", ctypes.POINTER(_Sockaddr)),
    ("ifa_ifu", ctypes.c_void_p),
    ("ifa_data", ctypes.c_void_p),
]


def _address(sa: "ctypes._Pointer[_Sockaddr]", family: int) -> bytes:
    raw = bytes(sa.contents.data)
    # sockaddr_in: port(2) addr(4); sockaddr_in6: port(2) flowinfo(4) addr(16)
    return raw[2:6] if family == socket.AF_INET else raw[6:22]


def local_interfaces(families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6)) -> list[Interface]:
    """Every address (with its netmask) on an up interface, grouped by family in `families` order."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    head = ctypes.POINTER(_Ifaddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        raise OSError(ctypes.get_errno(), "getifaddrs failed")
    try:
        entries = []
        node = head
        while node:
            ifa = node.contents
            if ifa.ifa_flags & IFF_UP and ifa.ifa_addr:
                family = ifa.ifa_addr.contents.family
                if family in (socket.AF_INET, socket.AF_INET6):
                    addr = _address(ifa.ifa_addr, family)
                    mask = _address(ifa.ifa_netmask, family) if ifa.ifa_netmask else b"\xff" * len(addr)
                    entries.append((family, addr, mask))
            node = ifa.ifa_next
    finally:
        libc.freeifaddrs(head)
    result: list[Interface] = []
    for wanted in families:
        for family, addr, mask in entries:
            if family != wanted or not any(addr):
                continue
            prefix = sum(bin(b).count("1") for b in mask)
            ip = ipaddress.ip_address(addr)
            result.append(ipaddress.ip_interface(f"{ip}/{prefix}"))
    return result


def _is_loopback(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip == ipaddress.IPv6Address("::1") if ip.version == 6 else ip in ipaddress.IPv4Network("127.0.0.0/8")


def own_interfaces(inet_interfaces: list[str], families: tuple[int, ...]) -> list[Interface]:
    """The addresses Postfix listens on for an inet_interfaces list, each with its interface netmask.

    "all": every interface address; "loopback-only": the loopback ones; otherwise each listed
    address or host name, which must be on a local interface (Postfix: "no local interface found").
    Duplicates are dropped, order kept.
    """
    local = local_interfaces(families)
    words = [w.lower() for w in inet_interfaces]
    if not words or words == ["all"]:
        chosen = local
    elif words == ["loopback-only"]:
        chosen = [i for i in local if _is_loopback(i.ip)]
    else:
        chosen = []
        for word in inet_interfaces:
            host = word[1:-1] if word.startswith("[") and word.endswith("]") else word
            try:
                wanted = [ipaddress.ip_address(host)]
            except ValueError:
                try:
                    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
                except socket.gaierror as exc:
                    raise ValueError(f"parameter inet_interfaces: host not found: {word}") from exc
                wanted = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
            for ip in wanted:
                match = [i for i in local if i.ip == ip]
                if not match:
                    raise ValueError(f"parameter inet_interfaces: no local interface found for {ip}")
                chosen.append(match[0])
    unique: list[Interface] = []
    for iface in chosen:
        if iface not in unique:
            unique.append(iface)
    return unique
