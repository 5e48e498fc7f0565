"""memwm environments: one registry, `envs.make(id)`, with one observation format."""
