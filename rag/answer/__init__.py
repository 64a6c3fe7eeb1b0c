"""Cited answers from ranked paragraphs, one module per step.

* ``compose``: :func:`~rag.answer.compose.answer_from_hits`, abstain / generate / extract;
* ``extractive``: the sentences that best answer the question, each with its ``[n]``;
* ``generated``: an OpenAI-compatible generator, its prompt and the citation check;
* ``abstain``: the relevance floor and the abstention message;
* ``citations``: a hit as a numbered citation; ``display``: what the edges show (search
  bodies, another display script, streaming pieces).
"""
