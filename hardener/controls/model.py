"""The shape of a catalog row: severity, vantage, reference, control, and what a vantage cannot know.

DESIGN.md, "One verdict per control": where two vantages judge the same control (lint of a
Postfix's main.cf and an audit of that Postfix running), they reach the same verdict, or the
catalog says why one cannot know. A control therefore carries the rule each of its vantages follows
(`rules`) and the known limits of each vantage (`blind_spots`), each limit with a stable key that
tests name when they expect the two vantages to differ (tests/test_vantage_agreement.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum


class Severity(IntEnum):
    """Finding severity, ordered so that comparisons work (INFO < ... < CRITICAL)."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The lowercase name used on the command line and in reports."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> "Severity":
        """Severity from its lowercase name; ValueError names the allowed values."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            allowed = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of: {allowed})") from None


class Vantage(str, Enum):
    """Where a control can be checked from."""

    CONFIG = "config"
    NETWORK = "network"
    HOST = "host"

    @property
    def command(self) -> str:
        """The hardener command that checks from this vantage (for documents)."""
        return {"config": "hardener lint", "network": "hardener audit",
                "host": "hardener check (planned)"}[self.value]


@dataclass(frozen=True)
class Reference:
    """A benchmark or document that backs a control."""

    source: str
    ident: str
    url: str = ""

    def __str__(self) -> str:
        return f"{self.source} {self.ident}".strip()


@dataclass(frozen=True)
class BlindSpot:
    """Something one vantage cannot know about a control, and why.

    `key` is stable and short ("certificate-unloadable"): a test that expects lint and audit to
    differ on a configuration names the key, and the catalog must hold it for that control.
    """

    key: str
    vantage: Vantage
    reason: str


@dataclass(frozen=True)
class Control:
    """One row of the catalog."""

    id: str
    slug: str
    title: str
    severity: Severity
    vantages: tuple[Vantage, ...]
    rationale: str
    remediation: str
    references: tuple[Reference, ...] = ()
    parameters: tuple[str, ...] = field(default=())
    # the rule each vantage follows to report this control (one entry per vantage in `vantages`)
    rules: Mapping[Vantage, str] = field(default_factory=dict, hash=False)
    blind_spots: tuple[BlindSpot, ...] = ()

    @property
    def security_severity(self) -> str:
        """CVSS-like score for SARIF's `security-severity` property (GitHub code scanning bands)."""
        return {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5",
                Severity.LOW: "3.0", Severity.INFO: "0.0"}[self.severity]

    def rule(self, vantage: Vantage) -> str:
        """The rule `vantage` follows for this control (KeyError when it does not judge it)."""
        return self.rules[vantage]

    def blind_spot(self, key: str) -> BlindSpot:
        """The documented blind spot `key` of this control (KeyError naming it when there is none)."""
        for spot in self.blind_spots:
            if spot.key == key:
                return spot
        raise KeyError(f"{self.slug} documents no blind spot {key!r}")
