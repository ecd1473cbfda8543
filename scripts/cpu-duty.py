#!/usr/bin/env python3
"""Keeps a fraction of one core busy (busy, then asleep, in 10 ms periods) until killed.

    scripts/cpu-duty.py 0.25

Used beside `shale-bench stalls` and fio to find how much CPU the VM's freezes need
(docs/benchmarks.md, "How much CPU the freezes need").
"""
import sys
import time

duty = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
if not 0.0 < duty <= 1.0:
    sys.exit(f"duty {duty} is not in (0, 1]")
PERIOD = 0.01
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < PERIOD * duty:
        pass
    if duty < 1.0:
        time.sleep(PERIOD * (1.0 - duty))
