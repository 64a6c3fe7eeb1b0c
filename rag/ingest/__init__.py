"""From files to documents: ``corpus`` (reading files and folders into documents), ``clean``
(what cleaning removes or flags) and ``chunking`` (paragraphs into chunks and sentences)."""
