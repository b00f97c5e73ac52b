"""Post-training: rollouts over the trie, group rewards, GRPO / GSPO / SA-GCPO, the RL checkpoint."""
