"""Running: a scenario, its data and model, the training loop, checkpoints, torchrun."""
