"""Workflows: definitions, loading, the engine and its runs, schedules, diagrams."""
