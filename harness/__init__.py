"""Running the real system for tests and benchmarks: a local broker, the scanledger processes,
workloads with an independent oracle, and the fault trials. Imported by tests/ and bench/."""
