"""The local stack and generated data: the demo (`make demo`), the tests and the benchmarks use
them; they are not part of the installed package or the image."""
