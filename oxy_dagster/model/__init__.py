"""Fast thinking: the instruction-following encoder-decoder generator, its trie-constrained decoding."""
