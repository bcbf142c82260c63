"""The shipped catalog: its YAML workflows and the tools they run on local data."""
