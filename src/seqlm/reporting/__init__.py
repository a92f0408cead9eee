"""Reports and the README's tables and figures, generated from results/."""
