"""Text as every step sees it: ``normalise`` (the one matching form and BM25 tokens, for corpus
and questions alike), ``sentences`` (sentence spans and matching units), ``language`` (a
question's language) and ``script`` (display scripts)."""
