"""``inventory-scale bench``: ours against the peer libraries on the same data, in one run.

- :mod:`.memory`: peak RSS of a process tree sampled from ``/proc``;
- :mod:`.peers`: one adapter per peer (statsforecast, mlforecast + LightGBM, neuralforecast);
- :mod:`.child`: runs one model over one dataset's cutoffs in its own process;
- :mod:`.hardware`: sgemm peak, LSTM training / inference throughput and GFLOP/s;
- :mod:`.harness`: datasets, cutoffs, scoring with ``evaluation.metrics``, ratios;
- :mod:`.table`: the Markdown and Parquet tables under ``<run.dir>/bench/``.
"""
