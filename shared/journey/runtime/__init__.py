"""The pure state machine: compiled rules, evaluating conditions at an instant, folding a
touchpoint into the state (evidence), channels, timers (when a rule is due, the next deadline),
the engine's step (`advance`) and replaying ticks through it.

Import from `shared.journey`, not from here, outside the engine (a ruff rule keeps it so).
"""
