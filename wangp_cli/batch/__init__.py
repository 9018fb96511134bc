"""Batch generation: manifests, shards, resumable runs, and a Ray backend (imported only when asked)."""
