"""Commands made of several steps on saved models: adapt, mix, diagnose, demo."""
