"""What a trained model is used for: evaluate, score, generate (and predict), rescore."""
