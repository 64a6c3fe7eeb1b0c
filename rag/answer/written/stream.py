"""A written answer checked sentence by sentence while the model writes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rag.answer.citations import make_citation
from rag.answer.extractive import MIN_SENTENCE_CHARS, quotable_spans
from rag.answer.written.checks import (
    check_citations,
    check_sentence,
    kept_names,
    most_similar,
    sentence_joiner,
)
from rag.answer.written.client import THINK, Generator
from rag.answer.written.markers import (
    MARKER,
    cited_numbers,
    normalise_markers,
    renumber,
    strip_markers,
)
from rag.answer.written.numbers import number_forms
from rag.answer.written.prompt import DEFAULT_FRAMING, answer_messages
from rag.question import Question
from rag.text.language import is_chinese_text
from rag.text.normalise import Normaliser, convert_script
from rag.text.sentences import OPEN_MARKER, matching_form, overlap, split_sentences, units
from rag.types import (
    CITATION_MARKER_ADDED,
    CITATION_MARKER_MOVED,
    CITATION_MARKERS_DROPPED,
    CITATION_REMOVED,
    FALLBACK_NOTHING_CITED,
    Answer,
    Hit,
    Notice,
)

if TYPE_CHECKING:
    from rag.embedding import Encoder


def _sentence_spans_for(
    claims: Sequence[str], text: str, normaliser: Normaliser | None = None
) -> list[tuple[int, int]]:
    """For each generated claim, the paragraph sentence that shares most with it (if any)."""
    cands = [
        (a, b, units(text[a:b], normaliser)) for a, b in split_sentences(text, min_chars=MIN_SENTENCE_CHARS)
    ]
    spans = []
    for claim in claims:
        wanted = units(claim, normaliser)
        scored = [(overlap(wanted, u), a, b) for a, b, u in cands]
        if scored:
            share, a, b = max(scored)
            if share >= 0.15:
                spans.append((a, b))
    return spans


class UnusableGeneration(Exception):
    """The generated answer is unusable; ``warnings`` go into the extractive answer's."""

    def __init__(self, warnings: Sequence[Notice]) -> None:
        super().__init__("; ".join(w.text for w in warnings))
        self.warnings = list(warnings)



class CheckedStream:
    """A generated answer checked sentence by sentence while the model writes it.

    :meth:`feed` takes the model's text pieces as they are decoded and returns what may be
    shown as final now (``pending`` holds the sentence still being written, unchecked): each sentence once it is complete (the next one has begun, or the text ended)
    and :func:`check_sentence` kept or repaired it, its out-of-range markers removed and its
    markers renumbered by first use (the sources shown are 1..k in the order cited). With
    ``quote_sources``, an English sentence over a Chinese paragraph is followed by the
    paragraph's sentence that supports it, quoted and cited (with ``anchors``, the sentence that
    holds the given span of that paragraph). What is shown is final: the
    streamed pieces join to :meth:`answer`'s text. A finished (or failed) stream's
    :meth:`answer` is the checked ``Answer``, with a warning for each removal and repair.
    """

    def __init__(self, question: Question, hits: Sequence[Hit], *, encoder: Encoder | None = None,
                 config: str | None = None, quote_sources: bool = True,
                 anchors: dict[int, tuple[int, int]] | None = None) -> None:
        self.question = question
        self.anchors = dict(anchors or {})  # source n -> [start, end) the quote must hold (an answer span)
        self.quote_sources = quote_sources
        self.quoted: set[tuple[int, int]] = set()
        self.hits = list(hits)
        self.encoder = encoder
        self.config = config
        self.texts = [f"{h.title}\n{h.text}" if h.title else h.text for h in self.hits]
        self.raw = ""
        self.done = 0  # sentences of the normalised raw text already checked
        self.clean = ""  # kept sentences, the model's numbering
        self.mapping: dict[int, int] = {}
        self.warnings: list[Notice] = []
        self.removed_markers: list[str] = []
        self.pending = ""  # the sentence being written, unchecked (the model's own markers)

    def feed(self, piece: str) -> str:
        """Add a decoded piece; the checked text that can be shown now ('' while a sentence is open)."""
        self.raw += piece
        return self._release(final=False)

    def close(self) -> str:
        """The text ended: check and release its last sentence."""
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        raw = self.raw
        if "<think>" in raw:  # a reasoning model's thoughts are never shown
            if "</think>" not in raw and not final:
                self.pending = ""
                return ""
            raw = THINK.sub("", raw)
        text = normalise_markers(raw.strip() if final else raw.lstrip())
        if not final:  # a marker being written ("…。[", "…。[1") still belongs to the sentence before it
            text = OPEN_MARKER.sub("", text)
        spans = split_sentences(text)
        ready = spans if final else spans[:-1]
        self.pending = text[spans[-1][0]:] if spans and not final else ""
        shown = ""
        for start, end in ready[self.done:]:
            shown += self._check(text[start:end])
        self.done = max(self.done, len(ready))
        return shown

    def _evidence(self, kept: str) -> str:
        """For an English sentence over Chinese sources: the sentence of each cited paragraph
        that supports it, quoted in the source's words and cited (``「…」[n]``), so that the
        names and terms the answer rests on are there as the source writes them."""
        plain = strip_markers(kept)
        if is_chinese_text(plain):
            return ""
        normaliser = self.question.normaliser
        quotes = []
        for old in cited_numbers(kept)[:2]:
            hit = self.hits[old - 1]
            if not is_chinese_text(hit.text):
                continue
            spans = quotable_spans(hit, normaliser)
            if not spans:
                continue
            anchor = self.anchors.get(old)
            holding = [(a, b) for a, b in spans if anchor and a <= anchor[0] < b]
            a, b = holding[0] if holding else self._closest(plain, hit, spans)
            quote = hit.text[a:b].strip()
            if (old, a) in self.quoted or matching_form(quote, normaliser) in matching_form(plain, normaliser):
                continue
            self.quoted.add((old, a))
            quotes.append(f"「{quote}」[{old}]")
        return " ".join(quotes)

    def _closest(self, plain: str, hit: Hit, spans: list[tuple[int, int]]) -> tuple[int, int]:
        """The span of ``hit`` closest to ``plain``: by the embedder (cross-lingual) when there is
        one; else the one sharing most numbers and kept Chinese names, then retrieval's best
        sentence, then the first."""
        if len(spans) > 1 and self.encoder is not None:
            return spans[most_similar(self.encoder, plain, [hit.text[a:b] for a, b in spans])]
        normaliser = self.question.normaliser
        nums = number_forms(plain)
        names = [matching_form(r, normaliser) for r in kept_names(plain)]
        start, end = hit.best_sentence or (-1, -1)

        def score(span: tuple[int, int]) -> tuple[int, int, int]:
            text = hit.text[span[0]:span[1]]
            shared = len(nums & number_forms(text)) + sum(n in matching_form(text, normaliser) for n in names)
            return shared, min(span[1], end) - max(span[0], start), -span[0]

        return max(spans, key=score)

    def _check(self, sentence: str) -> str:
        n = len(self.hits)
        self.removed_markers += [f"[{d}]" for d in MARKER.findall(sentence) if not 1 <= int(d) <= n]
        kept, verdict = check_sentence(sentence, self.texts, self.encoder, question=self.question.standalone,
                                       normaliser=self.question.normaliser)
        plain = strip_markers(sentence)
        if kept is None:
            self.warnings.append(Notice(CITATION_REMOVED,
                                        f"citation check: removed, not supported by its cited source: {plain[:120]}"))
            return ""
        if verdict == "repaired":
            self.warnings.append(Notice(CITATION_MARKER_ADDED, "citation check: added the missing marker of the "
                                        f"supporting source: {plain[:120]}"))
        elif verdict == "moved":
            self.warnings.append(Notice(CITATION_MARKER_MOVED, "citation check: moved the marker to the source that "
                                        f"supports it: {plain[:120]}"))
        return self._admit(kept)

    def built(self, sentence: str) -> str:
        """A sentence the product built itself around a span that its cited paragraph holds word
        for word (the template frame of an extracted answer): shown with its quoted source
        sentence like a checked one, without the support check, which reads the question's
        English words of the template as claims the Chinese paragraph must bear."""
        self.raw += sentence
        self.done = len(split_sentences(normalise_markers(self.raw.strip())))
        self.pending = ""
        return self._admit(sentence)

    def _admit(self, kept: str) -> str:
        """Show a kept sentence: its out-of-range markers dropped, its source sentence quoted
        after it, its markers renumbered by first use."""
        kept, _, _ = check_citations(kept, len(self.hits))
        evidence = self._evidence(kept) if self.quote_sources else ""
        if evidence:
            kept = f"{kept} {evidence}"
        for old in cited_numbers(kept):
            self.mapping.setdefault(old, len(self.mapping) + 1)
        joiner = sentence_joiner(self.clean) if self.clean else ""
        self.clean = f"{self.clean}{joiner}{kept}"
        piece = joiner + renumber(kept, self.mapping)
        return convert_script(piece, self.config)

    def answer(self) -> Answer:
        """The checked answer; raises :class:`UnusableGeneration` when nothing cited is left."""
        warnings = list(self.warnings)
        if self.removed_markers:
            warnings.insert(0, Notice(CITATION_MARKERS_DROPPED, "citation check: removed marker(s) "
                                      f"{' '.join(self.removed_markers)} that name no listed source"))
        used = cited_numbers(self.clean)
        if not used:
            raise UnusableGeneration(
                [*warnings, Notice(FALLBACK_NOTHING_CITED, "no sentence of the written answer cites a source "
                                                           "that supports it; showing extractive answer")]
            )
        text = renumber(self.clean, self.mapping)
        claims_for: dict[int, list[str]] = {old: [] for old in used}
        for a, b in split_sentences(self.clean):
            sentence = self.clean[a:b]
            for old in cited_numbers(sentence):
                claims_for[old].append(strip_markers(sentence))
        citations = tuple(
            make_citation(self.mapping[old], self.hits[old - 1],
                          _sentence_spans_for(claims_for[old], self.hits[old - 1].text, self.question.normaliser),
                          self.config)
            for old in sorted(used, key=self.mapping.__getitem__)
        )
        return Answer(convert_script(text, self.config), False, citations, {}, tuple(warnings), mode="generated")



def generated_answer(
    question: Question, hits: Sequence[Hit], generator: Generator, *, config: str | None = None,
    encoder: Encoder | None = None, framing: str = DEFAULT_FRAMING, quote_sources: bool = True,
) -> Answer:
    """Ask ``generator`` over the numbered ``hits``; check every sentence before it is shown.

    Markers outside ``1..N`` go; a sentence without a marker gets the one of the paragraph that
    supports it (``encoder``: cross-lingual similarity); a sentence its cited paragraph does not
    support (numbers, dates, quoted names, wording) is removed. Each repair and removal is a
    warning. Raises :class:`UnusableGeneration` when nothing cited is left. The same checks as
    a streamed answer (:class:`CheckedStream`), on the finished text.
    """
    checked = CheckedStream(question, hits, encoder=encoder, config=config, quote_sources=quote_sources)
    checked.feed(generator.complete(answer_messages(question, hits, framing)))
    checked.close()
    return checked.answer()
