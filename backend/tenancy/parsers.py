"""Request body parsers for the DRF views (the project's defaults, ``REST_FRAMEWORK`` in
settings)."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, with a body nested deeper than the interpreter's stack a 400: DRF
    catches only ``ValueError``, so 100,000 ``[`` were a RecursionError and a 500 (found by
    tests/reliability's fuzzer)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
