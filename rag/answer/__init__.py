"""Cited answers from ranked paragraphs, one module per step.

* ``compose``: :func:`~rag.answer.compose.answer_from_hits`, abstain / generate / extract;
* ``extractive``: the sentences that best answer the question, each with its ``[n]``;
* ``written``: answers a language model writes (client, prompt, markers, numbers, checks, the
  checked stream) and the one factory of the generators and the judge;
* ``steps``: the steps of an answer as it happens (``Retrieved``, ``Draft``, ``Piece``,
  ``Pending``, ``Final``);
* ``abstain``: the relevance floor and the abstention message;
* ``citations``: a hit as a numbered citation; ``display``: what the edges show (search
  bodies, another display script, streaming pieces).
"""
