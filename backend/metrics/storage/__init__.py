"""The metrics store, split by job: ``catalog`` (label sets ↔ series ids and the series
limits), ``encoding`` (the columnar block codec), ``blocks`` (the block table), ``outbox``
(the ingest hand-off and its drain into blocks), ``compaction``, ``reader`` (the PromQL
engine's PostgreSQL querier) and ``retention``."""
