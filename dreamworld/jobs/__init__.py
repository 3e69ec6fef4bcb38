"""Jobs that wire agents to world models: the demo, the collect-train-act loop, training an agent in a dream."""
