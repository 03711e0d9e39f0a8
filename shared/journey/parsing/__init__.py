"""From YAML to a Journey: reading and locating values (reader, yaml_source), parsing
journeys, conditions and actions, durations, the built-in templates, the JSON schema, and the
plain-English descriptions used as reasons. Problems are collected, never raised one by one.

Import from `shared.journey`, not from here, outside the engine (a ruff rule keeps it so).
"""
