"""Every model: the interface (interface), loading any saved model (loader), the families (ngram/,
neural/) and the composites built on other models (mixture, adapted)."""
