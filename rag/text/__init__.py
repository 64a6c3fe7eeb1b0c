"""Text as every step sees it, each rule in one place:

- ``normalise``: the one matching form and BM25 tokens (:class:`Normaliser`), for corpus and
  questions alike; its config is recorded in the index manifest;
- ``sentences``: the one sentence splitter, the ``[n]`` marker (whole, still open, stripped), the
  punctuation that takes no space before it, matching units and content words;
- ``language``: a question's language, the "how Chinese is this text" thresholds, question words
  and the characters that point back into a conversation;
- ``english``: stop words, the light and the Snowball stemmers, the gloss's English terms;
- ``cedict``: the CC-CEDICT file, its parser and cached readings;
- ``headlines``: lines that label a paragraph (headings, captions, credits);
- ``script``: display scripts.

Nothing here imports from the rest of ``rag`` (but ``rag.errors``).
"""
