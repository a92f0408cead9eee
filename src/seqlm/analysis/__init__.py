"""Looking inside trained models: gradients through time (gradients), the long-range recall probe (probe)."""
