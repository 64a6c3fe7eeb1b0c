"""Answers written by a language model from the retrieved paragraphs, checked before they are shown.

- :mod:`.client`: the ``Generator`` protocol and the client of OpenAI-compatible chat servers;
- :mod:`.prompt`: the chat messages (numbered paragraphs fenced as untrusted data);
- :mod:`.markers`: ``[n]`` citation markers (spellings, stripping, renumbering);
- :mod:`.numbers`: numbers as a reader compares them (Chinese numerals, magnitudes, bounds);
- :mod:`.checks`: whether a paragraph supports a written sentence, and the verdict on each;
- :mod:`.stream`: :class:`~.stream.CheckedStream`, the answer checked sentence by sentence;
- :mod:`.framed`: English answers over Chinese paragraphs, the answer copied then framed in English;
- :mod:`.factory`: the one place the generators and the judge are built from settings.

The generator only ever sees the retrieved paragraphs, numbered and fenced as untrusted data
(a random per-request fence that documents cannot guess or close). Whatever the model writes,
the checks enforce the rules afterwards: markers outside ``1..N`` are removed and reported, and
a sentence whose cited paragraph does not support it is flagged.
"""
