"""What each signal registers with the pipeline: how to drain its outbox, where its stored
rows live, and how to trim one org's rows for retention."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SignalStore:
    name: str  # "metrics", "traces": the key of the drain task and of the pending flag
    outbox_table: str  # one row per accepted request, with org_id and received_at
    # Move up to one round of the org's outbox into storage: what was stored, or None when
    # no batch was claimed (the outbox is empty, or other workers hold the rest).
    drain_once: Callable[[int], int | None]
    partitioned_table: str  # daily range partitions, dropped whole by retention
    key_units_per_ms: int  # the partition key's unit: 1 for ms, 1_000_000 for ns
    retention_field: str  # the OrgLimits field holding the retention in days
    # Delete one org's stored rows older than the cutoff (in partition-key units); returns
    # how many rows went.
    org_trim: Callable[[int, int], int]
    # More tables partitioned the same way, dropped whole by retention with the first.
    also_partitioned: tuple[str, ...] = ()
    # Drains of one org may run side by side: a drain that still finds batches after a
    # round asks for a helper (a backlog then takes the idle workers, not one), and a drain
    # is queued as soon as a request commits (no INGEST_DRAIN_DELAY_SECONDS to gather the
    # requests of a moment into one round: small rounds split across workers cost no more).
    side_by_side: bool = False


_stores: dict[str, SignalStore] = {}


def signal_register(store: SignalStore) -> None:
    _stores[store.name] = store


def signal_get(name: str) -> SignalStore:
    try:
        return _stores[name]
    except KeyError:
        raise LookupError(f"no signal {name!r} is registered with the pipeline") from None


def signals_all() -> list[SignalStore]:
    return list(_stores.values())
