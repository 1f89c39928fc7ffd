"""Fast paths beside the readable models, used by training only."""
