"""Studies: a file that fixes datasets, methods and seeds (`file`), the runs it asks for, what
they cost, and its committed archive kept up to date (`grid`, over `bench.results.archive`),
and running it (`execute`)."""
