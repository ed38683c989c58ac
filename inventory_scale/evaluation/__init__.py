"""Forecast evaluation: metrics, rolling backtest, reports."""
