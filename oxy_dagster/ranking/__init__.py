"""The unified multi-scenario ranking model (seed section 2.4, Figure 5): the reward model of post-training."""
