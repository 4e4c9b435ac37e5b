"""Answering defaults that every entry point shares (the CLI, the server, the evaluation, the
benches). A leaf module: it imports nothing, so the settings and the pipeline below the CLI can
both use it.
"""

#: Passages per prompt when neither the request nor a settings.json says. Three: in the decision
#: report's k sweep fewer passages read as well or better (bank FAQ F1 0.58 at k=3, 0.54 at 5,
#: n=60; SQuAD 0.33 and 0.32, n=200; the README has the commands), and a prompt of three is ~330
#: tokens shorter, which on a CPU is most of an answer's wait.
DEFAULT_K = 3

#: Demonstrations per prompt for the variants that show them, when neither the request nor a
#: settings.json says. Two: in the decision report's demonstrations sweep on the bank FAQ (RAG,
#: n=60) F1 read 0.53 with none or one, 0.58 with two, 0.59 with three and 0.58 with five, so a
#: third or fifth worked example buys nothing measurable for its tokens in every prompt.
DEFAULT_SHOTS = 2
