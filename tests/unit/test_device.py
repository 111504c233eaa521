"""How many CPU threads training uses: one only when other processes already fill every core."""

from __future__ import annotations

import os

import pytest

from phitune.training import device


@pytest.mark.parametrize("load, cores, busy", [
    (9.0, 2, True),    # heavily oversubscribed: one thread avoids OpenMP barrier stalls
    (3.0, 2, True),    # another 2-thread job besides this process
    (2.4, 2, False),   # this process plus a previous run's decaying average: idle
    (1.0, 2, False),
    (4.5, 4, False),
])
def test_busy_means_other_processes_fill_every_core(monkeypatch, load, cores, busy):
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert device.machine_is_busy() is busy
