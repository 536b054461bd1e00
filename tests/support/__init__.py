"""Helpers shared by the test tree: real backing services, free ports, child processes."""
