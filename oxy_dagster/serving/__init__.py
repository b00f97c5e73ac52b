"""Serving: the deployable bundle, the MLflow registry, the request runtime and the HTTP service."""
