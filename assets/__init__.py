"""Dagster software-defined assets: thin wrappers over ``oxy_dagster`` that log to MLflow."""
