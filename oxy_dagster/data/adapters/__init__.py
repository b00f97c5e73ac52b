"""Adapters that turn public datasets into the raw contract tables (items, users, events)."""

from .amazon_5core import AdapterInputError, read_amazon_5core
from .amazon_raw import read_amazon_raw
from .movielens import read_movielens_100k

__all__ = ["AdapterInputError", "read_amazon_5core", "read_amazon_raw", "read_movielens_100k"]
