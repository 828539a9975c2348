"""The way back: the pure planner, the preflight, and the planner that executes and journals."""
