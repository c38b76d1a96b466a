"""The steps of the graph, one module each; every step is `(state, runtime) -> state update`:

plan (sub-questions) -> act (search, fetch, read and a note, per sub-question, in parallel) -> reflect (enough, or
new sub-questions) -> ... -> answer (the cited answer). agent/graph.py wires them.
"""
