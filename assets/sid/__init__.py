"""Semantic-ID assets: encoded items, per-version item embeddings and codebooks, and their comparison."""
