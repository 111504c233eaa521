"""Stand-in training script: the lint corpus only needs the code folder to exist."""
