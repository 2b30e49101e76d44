"""Validate SARIF logs against the official SARIF 2.1.0 JSON schema vendored beside this file.

sarif-schema-2.1.0.json is the OASIS schema (oasis-tcs/sarif-spec, Schemata/sarif-schema-2.1.0.json,
112,768 bytes, sha256 ddddcccb...7949). URI formats are checked too ("uri" and the draft-6
"uri-reference", which jsonschema's draft-4 checker does not know), with rfc3986-validator.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from rfc3986_validator import validate_rfc3986

SCHEMA_PATH = Path(__file__).with_name("sarif-schema-2.1.0.json")


@lru_cache(maxsize=1)
def sarif_validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    checker = jsonschema.FormatChecker()
    checker.checks("uri")(lambda value: not isinstance(value, str) or bool(validate_rfc3986(value, rule="URI")))
    checker.checks("uri-reference")(
        lambda value: not isinstance(value, str) or bool(validate_rfc3986(value, rule="URI_reference")))
    return jsonschema.Draft4Validator(schema, format_checker=checker)


def sarif_errors(log: dict[str, Any]) -> list[str]:
    """Every schema violation in `log`, as 'path: message' (empty when valid)."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in sarif_validator().iter_errors(log)]
