"""Semantic IDs: item encoders, Q-Former fusion, contrastive training, RQ-KMeans and SID quality metrics."""
