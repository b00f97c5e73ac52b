"""OxyRec ML core: data, semantic IDs, models, training and evaluation.

Kept free of Dagster imports so it can be used from notebooks, scripts and
other orchestrators; the Dagster assets in ``assets/`` are thin wrappers.
"""

__version__ = "0.1.0"
