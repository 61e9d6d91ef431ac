"""The registry on disk: cards, locks, crash-safe writes, checked loading, summaries."""
