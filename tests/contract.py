"""Validate bodies against the official OpenAPI document (tests/data/margen-openapi.json).

``assert_matches_schema(body, "ItemList")`` checks ``body`` against
``#/components/schemas/ItemList`` with JSON Schema Draft 2020-12 (OpenAPI 3.1's dialect),
resolving every ``#/components/...`` reference inside the same document.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).parent / "data" / "margen-openapi.json"
_BASE = "urn:margen-openapi"


@lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@cache
def _validator(schema_name: str) -> Draft202012Validator:
    spec = load_spec()
    if schema_name not in spec["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in the spec")
    registry = Registry().with_resource(_BASE, Resource.from_contents(spec, default_specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"{_BASE}#/components/schemas/{schema_name}"},
                                registry=registry, format_checker=FormatChecker())


def schema_errors(body: Any, schema_name: str) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in _validator(schema_name).iter_errors(body)]


def assert_matches_schema(body: Any, schema_name: str) -> None:
    errors = schema_errors(body, schema_name)
    assert not errors, f"body does not match {schema_name}:\n" + "\n".join(errors[:20])
