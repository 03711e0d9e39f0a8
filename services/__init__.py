"""The Polku services, one package each: ingest (HTTP in, touchpoints out), stager (touchpoints
in, stages and transitions out), actions (transitions in, signed webhooks out), and dev (all
three in one process). Services build on `shared/` and do not import each other: `dev`
assembles the other three, and `polku sources` (ingest) reads where `dev` keeps its database.
`cli.py` is the `polku` command that starts them.
"""
