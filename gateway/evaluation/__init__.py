"""The evaluation harness: suites, the call client it drives, checks and reports."""
