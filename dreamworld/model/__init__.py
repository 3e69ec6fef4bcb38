"""What a world model is: the tokenizer, the dynamics transformer and its token decoder, the termination model,
`WorldModel` that joins them, the presets, and the numeric precision they compute in."""
