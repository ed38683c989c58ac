"""inventory_scale: distributed demand forecasting and reorder optimization for marketplaces."""

__version__ = "0.1.0"
