"""The control catalog: the one reviewed table every check, report and rendered comment refers to."""

from hardener.controls.catalog import CATALOG, by_id, by_slug, get
from hardener.controls.model import BlindSpot, Control, Severity, Vantage

__all__ = ["CATALOG", "BlindSpot", "Control", "Severity", "Vantage", "by_id", "by_slug", "get"]
