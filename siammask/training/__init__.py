"""Training: pair sampling, anchor/mask targets, losses, the two-stage loop."""
