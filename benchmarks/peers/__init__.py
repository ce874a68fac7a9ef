"""Classical peers the benchmarks score beside seqapps on the same splits."""
