"""Data layer: Parquet I/O, synthetic marketplace, real-data loaders, validation."""
