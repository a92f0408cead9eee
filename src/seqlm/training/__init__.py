"""train() for every kind (train), the neural run loop (neural) and its optimisation step (step)."""
