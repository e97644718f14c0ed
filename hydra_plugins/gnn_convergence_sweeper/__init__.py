"""Hydra plugins of gnn_convergence: the protocol sweeper."""
