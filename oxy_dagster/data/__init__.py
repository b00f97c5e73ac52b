"""Data stage: contract, validation, generators, adapters and Spark processing."""
