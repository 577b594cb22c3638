"""`python -m bench`: run the benchmarks, print the table, write results.json."""

from bench._cli import main

main()
