"""Training a world model: `config.TrainConfig`, `trainer.train`, the phases, their samplers and losses, compiling
and data-parallel runs."""
