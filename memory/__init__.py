"""voxgate memory: short-term (one call) and long-term (per caller) memory, and the
router that decides each turn what to read and write. See docs/agents.md."""
