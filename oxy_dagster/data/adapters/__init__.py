"""Adapters that turn public datasets into the raw contract tables (items, users, events)."""

from .amazon_raw import read_amazon_raw
from .beauty import read_beauty
from .movielens import read_movielens_100k

__all__ = ["read_amazon_raw", "read_beauty", "read_movielens_100k"]
