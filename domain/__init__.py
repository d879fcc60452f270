"""The pure core of Swictation: levels, thresholds, the pressure state machine and policies."""
