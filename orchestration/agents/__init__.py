"""The voice agents: the supervisor, the domain agents, their NLU and their YAML."""
