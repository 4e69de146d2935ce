"""Training utilities: adaptive gradient clipping and atomic, pickle-free checkpoints."""
