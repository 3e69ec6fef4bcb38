"""How close a dream stays to the game: open-loop fidelity and its report, object metrics, closed-loop
calibration."""
