"""The event log: events, stores, derived views, replay and the vault."""
