"""Measuring models: FLOPs, throughput, memory, and the harness behind ``vitkit bench``."""
