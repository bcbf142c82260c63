"""Several gateway nodes as one: the live bus (NATS) that carries each node's events to
every other node's views (docs/deployment.md, "The live bus")."""
