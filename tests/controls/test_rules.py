"""Every control states the rule each of its vantages follows, and its blind spots are well formed."""

from __future__ import annotations

import json

import pytest

from hardener.controls import CATALOG, Vantage, by_slug
from hardener.controls.docs import catalog_markdown, control_json, control_markdown


@pytest.mark.parametrize("control", CATALOG, ids=lambda c: c.slug)
def test_one_rule_per_vantage(control) -> None:
    assert set(control.rules) == set(control.vantages)
    for vantage in control.vantages:
        assert len(control.rule(vantage)) > 20, (control.slug, vantage)


@pytest.mark.parametrize("control", CATALOG, ids=lambda c: c.slug)
def test_blind_spot_keys_are_unique_slugs(control) -> None:
    keys = [spot.key for spot in control.blind_spots]
    assert len(keys) == len(set(keys))
    for key in keys:
        assert key == key.lower() and " " not in key and key == control.blind_spot(key).key


def test_unknown_blind_spot_names_the_control_and_key() -> None:
    with pytest.raises(KeyError, match="vrfy-enabled documents no blind spot 'nope'"):
        by_slug("vrfy-enabled").blind_spot("nope")


def test_vrfy_rule_is_answered_at_all_not_whether_users_differ() -> None:
    network = by_slug("vrfy-enabled").rule(Vantage.NETWORK)
    assert "other than 500 or 502" in network and "252 for every name counts" in network
    assert "user-enumeration" in network
    assert "VRFY" in by_slug("user-enumeration").rule(Vantage.NETWORK)


def test_rules_and_blind_spots_reach_every_document() -> None:
    page = catalog_markdown()
    control = by_slug("starttls-missing")
    section = control_markdown(control)
    assert "- config (`hardener lint`): " in section and "- network (`hardener audit`): " in section
    assert "- config, `certificate-unloadable`: " in section
    assert section in page
    data = json.loads(control_json(control))
    assert set(data["rules"]) == {"config", "network"}
    assert {"key": "certificate-unloadable", "vantage": "config",
            "reason": control.blind_spot("certificate-unloadable").reason} in data["blind_spots"]
