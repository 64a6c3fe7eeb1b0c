"""From a question to ranked paragraphs: ``hybrid`` (the retriever: dense, BM25 and English-gloss
channels over a loaded index), ``fusion`` (their scores into one), ``relevance`` (the
calibrated probability a paragraph answers, for abstention), ``crosslingual`` (CC-CEDICT words
for English questions) and ``gloss`` (the English gloss of Chinese paragraphs)."""
