"""Hydra plugins of gnn_convergence: the protocol sweeper and the `sweeps/` search path."""
