"""The journey vocabulary as values: stages, rules, conditions, actions, a journey, a
contact's state, a touchpoint, a transition, a step, the timer tick, and the errors and
problems the engine reports. No behaviour beyond small derived properties.

Import from `shared.journey`, not from here, outside the engine (a ruff rule keeps it so).
"""
