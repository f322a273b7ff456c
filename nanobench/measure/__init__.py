"""Measuring: the host and its devices, peaks, timers, memory, energy, the environment."""
