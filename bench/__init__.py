"""Benchmarks that print Canopy's figures side by side with a reference run in the same process."""
