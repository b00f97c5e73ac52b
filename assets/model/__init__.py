"""Fast-thinking assets: the pre-trained generator checkpoint and its offline evaluation."""
