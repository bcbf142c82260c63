"""voxgate on LiveKit: its models as livekit-agents plugins, and the agent worker."""
