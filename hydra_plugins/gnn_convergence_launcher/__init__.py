"""Hydra plugins of gnn_convergence: the population launcher (`hydra/launcher=population`)."""
