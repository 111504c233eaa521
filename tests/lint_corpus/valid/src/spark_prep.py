"""Stand-in Spark entry file for the lint corpus."""
