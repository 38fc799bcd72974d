"""startpoint's domain library: plain Python, never imports dagster.

Threads that wait for work sleep instead of spinning (OpenMP's passive wait policy), set here because OpenMP reads it
once, when torch first loads: beside a busy process a spinning thread burns the core its partner needs
(benchmarks/thread_wait.py, docs/engine.md). A value the user set wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
