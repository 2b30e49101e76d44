"""The control catalog: the one reviewed table every check, report and rendered comment refers to."""

from hardener.controls.catalog import CATALOG, Control, Severity, Vantage, by_id, by_slug, get

__all__ = ["CATALOG", "Control", "Severity", "Vantage", "by_id", "by_slug", "get"]
