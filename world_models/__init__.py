"""memwm world models: encoders, decoders, heads, latents, the sequence backbones and the WorldModel interface."""
