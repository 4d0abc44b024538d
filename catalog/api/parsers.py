"""Request parsers of the catalog API: JSON with a size and a depth limit.

DRF's JSONParser reads the whole body and recurses once per nesting level, so a small body nested
a few thousand deep is a RecursionError (a 500, anonymously on `POST auth/token/`). Every catalog
API view uses PARSER_CLASSES explicitly, so the limits hold whatever the host project's
DEFAULT_PARSER_CLASSES say.
"""

from __future__ import annotations

from typing import Any

from rest_framework import renderers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.settings import api_settings

from .. import safejson
from ..conf import goldpath_settings


class SafeJSONParser(BaseParser):
    """application/json, at most GOLDPATH["API_JSON_MAX_BYTES"] bytes and API_JSON_MAX_DEPTH levels (400 past them).

    Reads at most the limit plus one byte from the request stream: an oversized body is never held
    in memory whole.
    """

    media_type = "application/json"
    renderer_class = renderers.JSONRenderer
    strict = api_settings.STRICT_JSON

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding") or "utf-8"
        max_bytes = int(goldpath_settings.API_JSON_MAX_BYTES)
        max_depth = int(goldpath_settings.API_JSON_MAX_DEPTH)
        body = stream.read(max_bytes + 1) if stream is not None else b""
        if len(body) > max_bytes:
            raise ParseError(f"The JSON body is larger than {max_bytes} bytes.")
        try:
            return safejson.loads(body.decode(encoding), max_depth=max_depth, strict=self.strict)
        except safejson.JSONTooDeep:
            raise ParseError(f"The JSON body nests arrays/objects deeper than {max_depth} levels.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


# What every catalog API view parses (views that take files or raw bodies list their own).
PARSER_CLASSES: list[type[BaseParser]] = [SafeJSONParser, FormParser, MultiPartParser]
