"""The machinery the benchmarks share; the bench/*.py scripts are the scenarios.

- ``canopy``: a fresh Canopy (``make run``'s processes on embedded PostgreSQL/Redis) per run
- ``cpu``: CPU seconds of process trees and of the machine, the background load, idling
- ``senders``: remote-write senders, one process per shard, and a null sink
- ``targets``: one remote-write target measured (acknowledged, stored, CPU)
- ``timing``: wall and CPU time of a call repeated in process (the decoder benchmarks)
- ``table``: figures as aligned text columns

Payloads come from ``bench/istio_payloads.py``; a real Prometheus from
``tests/compat/prometheus_harness.py``, which the compat suite uses too.
"""
