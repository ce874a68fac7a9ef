"""Benchmark scripts and the classical peers they compare seqapps with."""
