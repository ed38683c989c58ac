"""Product text as forecasting features.

``embed``: offline MiniLM sentence embeddings, cached; ``features``: the static covariates built
from them for the LSTM.
"""
