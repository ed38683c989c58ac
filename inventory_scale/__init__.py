"""inventory_scale: distributed demand forecasting and reorder optimization for marketplaces."""

import os

# OpenMP threads spin-wait by default: on a loaded machine (other jobs, other Ray workers) that made
# a 2-thread LSTM step 20-40x slower; passive waiting measured the same idle (662 vs 655 training
# windows/s, demo shard, 2 cores). Set here, before torch loads, so the CLI, notebooks and every Ray
# worker (which imports this package before any task runs) get it; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
