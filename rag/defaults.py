"""Answering defaults that every entry point shares (the CLI, the server, the evaluation, the
benches). A leaf module: it imports nothing, so the settings and the pipeline below the CLI can
both use it.
"""

#: Passages per prompt when neither the request nor a settings.json says. Three: in the decision
#: report's k sweep fewer passages read as well or better (bank FAQ F1 0.58 at k=3, 0.54 at 5,
#: n=60; SQuAD 0.33 and 0.32, n=200; the README has the commands), and a prompt of three is ~330
#: tokens shorter, which on a CPU is most of an answer's wait.
DEFAULT_K = 3
