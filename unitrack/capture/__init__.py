"""What a run records about itself: environment, git state, system usage, the model set-up."""
