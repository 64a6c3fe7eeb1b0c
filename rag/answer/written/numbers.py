"""Numbers as a reader compares them: digits, Chinese numerals, magnitude words, bounds."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from rag.text.sentences import matching_form, numbers

# Numbers are read in the default matching form (OpenCC t2s), whatever the index's normaliser:
# the magnitude words below are written in it, and what is compared is digit strings, which
# no script conversion changes.

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "兩": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_BIG = {"萬": 10_000, "万": 10_000, "億": 100_000_000, "亿": 100_000_000}
# Magnitude words after a number (matching form: Simplified, case-folded).
_SCALE = {"thousand": 10**3, "hundred thousand": 10**5, "million": 10**6, "hundred million": 10**8,
          "billion": 10**9, "trillion": 10**12, "万": 10**4, "百万": 10**6, "千万": 10**7, "亿": 10**8,
          "万亿": 10**12}
_SCALED = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*(hundred\s+thousand|hundred\s+million|thousand|million|billion"
                     r"|trillion|万亿|百万|千万|万|亿)")
# A number stated as a bound: "more than" before it, or 多/余/+ right after it.
_BOUND_BEFORE = re.compile(r"(?:超过|逾|多于|高于|不少于|over|more than|above|at least|upwards of|in excess of"
                           r"|exceeding)\s*(?:hk\$|us\$|rmb|\$)?\s*$")
_BOUND_AFTER = re.compile(r"\s*(?:多|余|\+|-plus|-odd|\s*以上)")
_CN_NUMBER = re.compile(r"[零〇一二兩两三四五六七八九十百千萬万億亿]{2,}")


def chinese_numeral(text: str) -> int | None:
    """一千二百 -> 1200, 十五 -> 15, 二〇二四 -> 2024 (digit by digit without units); None if not one."""
    if not text or any(c not in _CN_DIGITS and c not in _CN_UNITS and c not in _CN_BIG for c in text):
        return None
    if text[0] in _CN_BIG:
        return None  # 萬一 ("in case") is a word, not a number
    if not any(c in _CN_UNITS or c in _CN_BIG for c in text):
        return int("".join(str(_CN_DIGITS[c]) for c in text))
    total, section, digit = 0, 0, None
    for c in text:
        if c in _CN_DIGITS:
            digit = _CN_DIGITS[c]
        elif c in _CN_UNITS:
            section += (1 if digit is None else digit) * _CN_UNITS[c]
            digit = None
        else:
            total += (section + (digit or 0)) * _CN_BIG[c]
            section, digit = 0, None
    return total + section + (digit or 0)


def number_forms(text: str) -> frozenset[str]:
    """The numbers of ``text`` as digit strings: ``1,200`` / ``1200`` / ``一千二百`` -> ``1200``;
    a number with a magnitude word also as its value: ``5億`` / ``5 hundred million`` ->
    ``500000000`` (besides ``5``)."""
    found = set(numbers(text))
    for m in _CN_NUMBER.finditer(text):
        value = chinese_numeral(m.group())
        if value is not None:
            found.add(str(value))
    found.update(value for _, value in scaled_numbers(text))
    return frozenset(found)


def scaled_numbers(text: str) -> list[tuple[str, str]]:
    """``(digits, value)`` of each number with a magnitude word: ``330億`` -> ``("330",
    "33000000000")``, ``3.3 billion`` -> ``("33", "3300000000")``."""
    out = []
    for m in _SCALED.finditer(matching_form(text)):
        try:
            value = Decimal(m.group(1).replace(",", "")) * _SCALE[re.sub(r"\s+", " ", m.group(2).lower())]
        except (InvalidOperation, KeyError):
            continue
        out.append((re.sub(r"[,.]", "", m.group(1)), str(int(value)) if value == value.to_integral() else str(value)))
    return out


def bounded_numbers(text: str) -> dict[str, list[bool]]:
    """Each number of ``text`` (digits) -> for each place it occurs, whether it is stated as a
    bound: ``超過50`` / ``150多`` / ``逾30`` / ``over 50`` / ``more than 150`` / ``50+``."""
    text = matching_form(text)
    out: dict[str, list[bool]] = {}
    for m in re.finditer(r"\d[\d,.]*\d|\d", text):
        before, after = text[max(0, m.start() - 16):m.start()], text[m.end():m.end() + 6]
        bound = bool(_BOUND_BEFORE.search(before) or _BOUND_AFTER.match(after))
        out.setdefault(re.sub(r"[,.]", "", m.group()), []).append(bound)
    return out


def number_faithful(sentence: str, paragraph: str) -> bool:
    """Every number of ``sentence`` occurs in ``paragraph`` in some form; one with a magnitude
    word by its value (330億 is 33 billion, not 330 billion); and one the paragraph only gives as
    a bound (``超過50條``, ``90多條``) is a bound in the sentence too, not an exact count."""
    nums = set(number_forms(sentence))
    for digits, value in scaled_numbers(sentence):
        nums.discard(digits)  # compared by its value
        nums.add(value)
    if nums and not nums <= number_forms(paragraph):
        return False
    said, stated = bounded_numbers(sentence), bounded_numbers(paragraph)
    return not any(places and all(stated.get(n) or [False]) and not any(places) for n, places in said.items()
                   if n in stated)



# A number as stated, for comparing by value: digits (with separators and a decimal part) or a
# run of Chinese numerals, an optional magnitude word, an optional percent sign or word; or
# 百分之 before it. Read in the default matching form (NFKC: full-width digits and ％ are ASCII).
_VALUE = re.compile(
    r"(?P<pre>百分之)?\s*(?P<num>\d[\d,]*(?:\.\d+)?|[零〇一二两三四五六七八九十百千万亿]+)"
    r"(?:\s*(?P<scale>hundred\s+thousand|hundred\s+million|thousand|million|billion|trillion"
    r"|万亿|百万|千万|万|亿)(?![a-z]))?"
    r"(?:\s*(?P<pct>%|percent\b|per\s+cent\b))?")


def stated_values(text: str) -> frozenset[tuple[Decimal, bool]]:
    """The numbers of ``text`` by value, each with whether it is a percentage: ``330億``,
    ``330 亿``, ``33,000,000,000`` and ``33 billion`` -> ``(33000000000, False)``; ``2.5萬`` and
    ``25,000`` -> ``(25000, False)``; ``25%``, ``25 percent`` and ``百分之二十五`` -> ``(25, True)``.
    A run of Chinese numerals counts from two characters (一 alone is a word more often than a
    number), or one with a magnitude word or a percent before or after it."""
    out: set[tuple[Decimal, bool]] = set()
    for m in _VALUE.finditer(matching_form(text)):
        num, scale, pct = m.group("num"), m.group("scale"), bool(m.group("pre") or m.group("pct"))
        if num[0].isdigit():
            try:
                value = Decimal(num.replace(",", ""))
            except InvalidOperation:
                continue
        else:
            if len(num) < 2 and not (scale or pct):
                continue
            cn = chinese_numeral(num)
            if cn is None:
                continue
            value = Decimal(cn)
        if scale:
            value *= _SCALE[re.sub(r"\s+", " ", scale)]
        out.add((value.normalize() if value != value.to_integral() else Decimal(int(value)), pct))
    return frozenset(out)
