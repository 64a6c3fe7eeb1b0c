"""The index folder: one module per concern.

* ``manifest``: the manifest, the build lock, readers' holds on data folders;
* ``integrity``: file sizes and sha256 against the manifest, verified stamps;
* ``tables``: the files of a data folder, their writer and read-only row tables;
* ``loaded``: :class:`~rag.index.loaded.LoadedIndex`, everything a search needs;
* ``build``: ``rag index`` (ingest, chunk, embed, write a new data folder);
* ``freshness``: is the index up to date (answered before the rest is imported);
* ``compat``: does an index fit the settings (format and build key, model, normaliser,
  chunking, gloss, store kind), and the version numbers of the index format.

Layout::

    index/
      manifest.json        # written last, atomically: it names the live data folder
      data-<stamp>/        # documents.json, paragraphs.json + text blob, chunk/sentence tables,
                           # sentence vectors, row keys, the store's files, bm25/
      .lock                # held by `rag index` while it builds

A build writes a new data folder, then replaces ``manifest.json`` with one atomic rename, so
a reader sees either the old index or the new one, never half of each.
"""
