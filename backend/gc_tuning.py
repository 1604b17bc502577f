"""The garbage collector's settings for Canopy's long-lived worker processes."""

import gc

# An ingest request or a drain round makes thousands of short-lived objects (a span object,
# its ids, per span), freed by reference counting. With the default threshold (700
# allocations) the young generation is collected a dozen times per request or round for
# nothing: ~0.8 CPU-us per span in a web worker, ~1.6 in a drain (bench/traces_ingest.py).
YOUNG_THRESHOLD = 10_000


def settle_after_boot() -> None:
    """Call once a worker process has booted: what booting created lives as long as the
    process, so keep it out of the collector's full passes (which otherwise walk all of it
    again and again, 100+ ms each), and collect the young generation less often. The older
    generations keep their defaults."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
