"""Forecasting models: the DeepAR-style LSTM, its likelihood heads, the Lightning module, baselines."""
