"""memwm agents: replay, the Dreamer learner, recurrent PPO, in-context RL, the training loop and the CLI."""
