"""What every service builds on: the journey engine (`journey/`), the database (`db/`), the two
logs behind one interface (`streams.py`: Kafka in `kafka.py`, the embedded log in
`embedded_log.py`), the messages that cross process boundaries (`wire.py`), settings, clocks,
failure classification and the ops endpoints. Nothing here imports from `services/`.
"""
