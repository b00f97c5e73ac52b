"""The reward mapping service (seed section 2.4, Figure 2(d)): format, relevance, ranking and diversity."""
