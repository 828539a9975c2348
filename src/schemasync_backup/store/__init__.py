"""Backups on fsspec storage: the store, retention and maintenance (prune, usage, health, optimize)."""
