"""The whole pipeline as real processes, in both run modes."""
