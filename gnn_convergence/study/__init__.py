"""Search space, protocol replay and Optuna sampler of the convergence study."""
