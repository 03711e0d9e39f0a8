"""Specification of the journey engine: parsing, conditions, the state machine, templates.
"""
