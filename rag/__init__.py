"""Bilingual question answering over a document corpus, citing exact source paragraphs."""

__version__ = "0.1.0"
