"""Looking inside trained models: embeddings (nearest neighbours)."""
