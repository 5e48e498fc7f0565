"""The memory suite: fast numpy-rendered tasks for the four capabilities S4WM probes."""
