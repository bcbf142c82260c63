"""HTTP endpoints and the live-state WebSocket."""
