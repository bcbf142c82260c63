"""The ``voxgate`` command line."""
