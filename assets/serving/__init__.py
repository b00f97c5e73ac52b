"""Serving assets: the deployed model (bundle + registry) the recommendation service loads."""
