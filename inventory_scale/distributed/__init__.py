"""Distribution: sharding of series (pure) and the Ray runner (the only Ray importers)."""
