"""Find robust training hyperparameters for a connectivity-recovering GNN."""
