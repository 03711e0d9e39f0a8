"""Stager tests on SQLite and the embedded log: batches, dead letters, transition records.
"""
