"""Labels and label matchers: the leaf every metrics module (and the PromQL engine) shares.

Two shapes of one thing, named apart: ``Labels`` is a series' labels as a dict (what the
engine computes with and the API returns); ``LabelPairs`` is the same labels as a tuple of
``(name, value)`` pairs sorted by name (hashable: what the catalog and the ingest path key
series by).
"""

from __future__ import annotations

from dataclasses import dataclass

import re2

METRIC_NAME = "__name__"

Labels = dict[str, str]
LabelPairs = tuple[tuple[str, str], ...]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def anchored_regex(pattern: str):
    """Prometheus's regexes: RE2 syntax and linear time whatever the pattern, fully anchored.
    Raises ``re2.error`` for an invalid pattern."""
    return re2.compile(f"^(?:{pattern})$", options=_RE2_OPTIONS)


def labels_key(labels: Labels) -> LabelPairs:
    """The labels as sorted pairs: Prometheus's label order, and a hashable key."""
    return tuple(sorted(labels.items()))


def metric_name_of(labels: LabelPairs) -> str:
    return next((value for name, value in labels if name == METRIC_NAME), "")


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str

    def compile(self):
        if self.op in ("=~", "!~"):
            return anchored_regex(self.value)
        return None

    def matches(self, labels: Labels, pattern=None) -> bool:
        """Whether the labels satisfy this matcher; ``pattern`` is ``compile()``'s result,
        passed in by callers that check many label sets."""
        value = labels.get(self.name, "")  # an absent label equals the empty string
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = (pattern or self.compile()).match(value) is not None
        return hit if self.op == "=~" else not hit
