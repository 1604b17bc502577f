"""The garbage collector's settings of the worker processes (backend/gc_tuning.py)."""

import gc

from celery.signals import worker_process_init

from backend import celery as canopy_celery
from backend.gc_tuning import YOUNG_THRESHOLD, settle_after_boot


def test_settle_after_boot_freezes_and_raises_the_young_threshold():
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        gc.set_threshold(700, *before[1:])
        settle_after_boot()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_celery_pool_processes_settle_once_booted():
    receivers = [ref() if callable(ref) else ref for _, ref in worker_process_init.receivers]
    assert canopy_celery._settle in receivers
