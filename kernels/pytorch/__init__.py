"""PyTorch references of the Triton kernels: the definition each kernel is tested against, and the CPU path."""
