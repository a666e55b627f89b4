"""Checks what the fake OpenAI server sends against OpenAI's own published schemas (openai/openai-openapi,
vendored in openai_schemas/ with its licence and provenance; see openai_schemas/README.md).

`problems(schema, obj)` lists every way `obj` breaks the named schema, one line each ("" = fine). The
schemas are loaded with the adjustments the README lists (nullable optionals, base64 embeddings), and
nothing else: an invented status, a missing required field or a wrong type is reported.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

HERE = Path(__file__).parent / "openai_schemas"
SPEC_URI = "urn:openai-openapi"


def _nullable_optionals(node: Any) -> Any:
    """Every property an object schema does not require may also be null (the SDK types all of them
    `Optional[...] = None`, and the spec's own examples show `"failed_at": null`); OpenAPI 3.0's
    `nullable: true` becomes the same anyOf."""
    if isinstance(node, list):
        return [_nullable_optionals(value) for value in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_optionals(value) for key, value in node.items()}
    if node.pop("nullable", False):
        node = {"anyOf": [node, {"type": "null"}]}
    properties = node.get("properties")
    if isinstance(properties, dict):
        required = set(node.get("required", []))
        node["properties"] = {name: schema if name in required else {"anyOf": [schema, {"type": "null"}]}
                              for name, schema in properties.items()}
    return node


@cache
def _registry() -> Registry:
    schemas: dict[str, Any] = {}
    for name in ("openapi-3.1-extract.json", "batch-lines-3.0-extract.json"):
        schemas.update(json.loads((HERE / name).read_text())["components"]["schemas"])
    schemas = _nullable_optionals(copy.deepcopy(schemas))
    # `Embedding.embedding` is typed only as an array, but `encoding_format: base64` makes it a string
    # (openai/openai-openapi#99); callers check that base64 was asked for.
    embedding = schemas["Embedding"]["properties"]["embedding"]
    schemas["Embedding"]["properties"]["embedding"] = {"anyOf": [embedding, {"type": "string"}]}
    bundle = {"components": {"schemas": schemas}}
    resource = Resource.from_contents(bundle, default_specification=DRAFT202012)
    return Registry().with_resource(SPEC_URI, resource)


@cache
def _validator(schema: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{SPEC_URI}#/components/schemas/{schema}"}, registry=_registry())


def problems(schema: str, obj: Any) -> list[str]:
    """Each violation of `schema` by `obj`, as "path: message"."""
    found = []
    for error in _validator(schema).iter_errors(obj):
        path = "/".join(str(part) for part in error.absolute_path) or "(top)"
        found.append(f"{schema} {path}: {error.message[:200]}")
    return found


def output_line_problems(raw: bytes) -> list[str]:
    """A line of a batch output or error file: `BatchRequestOutput`, and the body of a 200 response of
    an embeddings batch is a `CreateEmbeddingResponse`."""
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        return [f"BatchRequestOutput: not JSON: {exc}"]
    found = problems("BatchRequestOutput", obj)
    response = obj.get("response") if isinstance(obj, dict) else None
    if isinstance(response, dict) and response.get("status_code") == 200:
        found += problems("CreateEmbeddingResponse", response.get("body"))
    elif isinstance(response, dict):
        found += problems("ErrorResponse", response.get("body"))
    return found
