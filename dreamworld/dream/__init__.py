"""A world model as a Gymnasium environment: `DreamEnv`, `DreamVectorEnv`, their start contexts and actions, and
the observations agents see (pixels, latent codes, object vectors)."""
