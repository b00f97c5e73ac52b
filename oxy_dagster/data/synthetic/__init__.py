"""Seeded generator of realistic synthetic e-commerce logs (the embedded default dataset)."""

from .generator import SyntheticConfig, generate, write_raw_tables

__all__ = ["SyntheticConfig", "generate", "write_raw_tables"]
