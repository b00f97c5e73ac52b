"""Post-training assets: the unified ranking model, the RL checkpoint, its evaluation and the RL ablations."""
