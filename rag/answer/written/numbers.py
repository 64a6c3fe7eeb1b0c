"""Numbers as a reader compares them: digits, Chinese numerals, magnitude words, bounds."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
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
_SCALED = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*(?:多|余)?\s*(hundred\s+thousand|hundred\s+million|thousand|million|billion"
                     r"|trillion|万亿|百万|千万|万|亿)")
# A number stated as a bound: "more than" before it, or 多/余/+ right after it.
_BOUND_BEFORE = re.compile(r"(?:超过|逾|多于|高于|不少于|over|more than|above|at least|at most|up to|no more than|upwards of|in excess of"
                           r"|exceeding)\s*(?:hk\$|us\$|rmb|\$)?\s*$")
_BOUND_AFTER = re.compile(r"\s*(?:多|余|\+|-plus|-odd|\s*以上)")
_CN_NUMBER = re.compile(r"[零〇一二兩两三四五六七八九十百千萬万億亿]{2,}")
# A lone numeral the source writes with a counter (五所, 三間) or as tenths (三成 is 30%); 一 is
# left out ("a", as in 一個).
_CN_LONE = re.compile(r"(?<![零〇一二兩两三四五六七八九十百千萬万億亿])([二三四五六七八九十])(成|[条个间所家项宗件次架台部座种只份批场款张栋幢套辆艘名位])")


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
    for m in _CN_LONE.finditer(matching_form(text)):
        value = _CN_DIGITS.get(m.group(1), 10)
        found.add(str(value * 10 if m.group(2) == "成" else value))
    found.update(value for _, value in scaled_numbers(text))
    return frozenset(found)


def scaled_numbers(text: str) -> list[tuple[str, str]]:
    """``(digits, value)`` of each number with a magnitude word: ``330億`` -> ``("330",
    "33000000000")``, ``3.3 billion`` -> ``("33", "3300000000")``."""
    out = []
    for m in _SCALED.finditer(matching_form(text)):
        value = _scaled_value(m)
        if value is not None:
            out.append((re.sub(r"[,.]", "", m.group(1)), value))
    return out


def _scaled_value(m: re.Match[str]) -> str | None:
    """The value of a :data:`_SCALED` match as a digit string (None when it cannot be read)."""
    try:
        value = Decimal(m.group(1).replace(",", "")) * _SCALE[re.sub(r"\s+", " ", m.group(2).lower())]
    except (InvalidOperation, KeyError):
        return None
    return str(int(value)) if value == value.to_integral() else str(value)


def bounded_numbers(text: str) -> dict[str, list[bool]]:
    """Each number of ``text`` (digits) -> for each place it occurs, whether it is stated as a
    bound: ``超過50`` / ``150多`` / ``逾30`` / ``over 50`` / ``more than 150`` / ``50+``."""
    text = matching_form(text)
    out: dict[str, list[bool]] = {}
    for m in re.finditer(r"\d[\d,.]*\d|\d", text):
        before, after = text[max(0, m.start() - 16):m.start()], text[m.end():m.end() + 6]
        bound = bool(_BOUND_BEFORE.search(before) or _BOUND_AFTER.match(after))
        out.setdefault(re.sub(r"[,.]", "", m.group()), []).append(bound)
    for m in _SCALED.finditer(text):  # a number with a magnitude word also by its value: 超過330億 is a bound
        value = _scaled_value(m)
        if value is not None:
            before, after = text[max(0, m.start() - 16):m.start()], text[m.end():m.end() + 6]
            bound = bool(_BOUND_BEFORE.search(before) or _BOUND_AFTER.match(after) or re.search("多|余", m.group()))
            out.setdefault(value, []).append(bound)
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


# ---------------------------------------------------------------------------------------------
# Numbers in English: a number as the source writes it (330億, 超過50條, 百分之三十, HK$2.5萬),
# said the way an English reader reads it (33 billion, more than 50, 30%, HK$25,000). Only what
# the source states: the value, its bound, its currency and a few counters with an English noun.

# Bounds before the number, longest first (不超過 before 超過); a bound after it (多, 以上, 左右).
_EN_BOUND_BEFORE = (
    ("不超過|不超过|不多於|不多于|最多|至多", "at most"),
    ("超過|超过|逾|多於|多于|高於|高于|over|more than|above|in excess of", "more than"),
    ("至少|不少於|不少于|最少|at least", "at least"),
    ("大約|大约|約|约|大概|about|around|approximately|some", "about"),
    ("接近|將近|将近|幾近|几近|近|nearly|almost|close to", "nearly"),
    ("不足|少於|少于|低於|低于|不到|less than|fewer than|under|below", "less than"),
)
_EN_BOUND_AFTER = {"多": "more than", "餘": "more than", "余": "more than", "以上": "at least",
                   "以下": "at most", "左右": "about", "-plus": "more than", "+": "more than"}
_EN_CURRENCY_BEFORE = (
    ("hk\\$|hkd|港幣|港币", "HK$"), ("us\\$|usd|美金", "US$"), ("rmb|cny|人民幣|人民币", "RMB "), ("\\$", "$"),
)
_EN_CURRENCY_AFTER = {"港元": "HK$", "港幣": "HK$", "港币": "HK$", "美元": "US$", "人民幣": "RMB ",
                      "人民币": "RMB ", "元": "$", "圓": "$", "圆": "$"}
# Counters after a number: dropped (超過50條 is "more than 50"), or said with their noun.
_EN_NOUNS = {"人": ("person", "people"), "名": ("person", "people"), "位": ("person", "people"),
             "年": ("year", "years"), "倍": ("time", "times"), "天": ("day", "days"), "日": ("day", "days"),
             "個月": ("month", "months"), "个月": ("month", "months"), "歲": ("year old", "years old"),
             "岁": ("year old", "years old"), "個百分點": ("percentage point", "percentage points"),
             "个百分点": ("percentage point", "percentage points")}
_EN_COUNTERS = "條条個个間间所家項项宗件次架台部座種种隻只份批場场款張张棟栋幢套輛辆艘"
_EN_MAGNITUDE = {"萬億": 10**12, "万亿": 10**12, "百萬": 10**6, "百万": 10**6, "千萬": 10**7, "千万": 10**7,
                 "萬": 10**4, "万": 10**4, "億": 10**8, "亿": 10**8, "thousand": 10**3, "million": 10**6,
                 "billion": 10**9, "trillion": 10**12}
_EN_WORDS = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"))


def _alternation(groups: Iterable[str]) -> str:
    """One regex alternation of the ``|``-separated words of ``groups``, longest first."""
    return "|".join(sorted((w for group in groups for w in group.split("|")), key=len, reverse=True))


_EN_NUMBER = re.compile(
    rf"(?P<bound>{_alternation(p for p, _ in _EN_BOUND_BEFORE)})?\s*"
    rf"(?P<cur>{_alternation(p for p, _ in _EN_CURRENCY_BEFORE)})?\s*"
    r"(?P<pct>百分之)?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|[零〇一二兩两三四五六七八九十百千萬万億亿]+)\s*"
    r"(?P<many>多|餘|余)?\s*"
    rf"(?P<mag>{_alternation(_EN_MAGNITUDE)})?\s*"
    r"(?P<many2>多|餘|余|\+|-plus)?\s*"
    r"(?P<unit>%|成|個百分點|个百分点)?\s*"
    rf"(?P<cur2>{_alternation(_EN_CURRENCY_AFTER)})?"
    rf"(?P<noun>{_alternation(_EN_NOUNS)}|[{_EN_COUNTERS}])?\s*"
    r"(?P<after>以上|以下|左右)?",
    re.IGNORECASE,
)


def _plain(value: Decimal) -> str:
    """``25000`` -> ``25,000``, ``2.50`` -> ``2.5``, ``1234.5`` -> ``1,234.5``."""
    text = f"{value:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def english_value(value: Decimal) -> str:
    """A value as English writes it: ``33000000000`` -> ``33 billion``, ``25000`` -> ``25,000``."""
    for scale, word in _EN_WORDS:
        if abs(value) >= scale and (value * 1000 / scale) == (value * 1000 / scale).to_integral():
            return f"{_plain(value / scale)} {word}"
    return _plain(value)


def english_number(text: str) -> str | None:
    """``text``, one number as the source writes it, in English; None when it is not one number.

    ``330億`` -> ``33 billion``, ``2.5萬`` -> ``25,000``, ``超過50條`` / ``50多條`` -> ``more than 50``,
    ``約2.5萬人`` -> ``about 25,000 people``, ``百分之三十`` / ``三成`` / ``30%`` -> ``30%``,
    ``330億港元`` / ``HK$330億`` -> ``HK$33 billion``, ``2024年`` -> ``2024``. Traditional,
    Simplified and English input alike; the checks read the result back to the same value
    (:func:`number_faithful`)."""
    form = unicodedata.normalize("NFKC", text or "").strip().rstrip("。.,，")
    m = _EN_NUMBER.fullmatch(form)
    if m is None or not m.group("num"):
        return None
    num = m.group("num")
    if num[0].isdigit():
        value = Decimal(num.replace(",", ""))
    else:
        parsed = chinese_numeral(num)
        if parsed is None:
            return None
        value = Decimal(parsed)
    mag = (m.group("mag") or "").lower()
    if mag:
        value *= _EN_MAGNITUDE[mag]
    unit = m.group("unit") or ""
    bound = next((word for pattern, word in _EN_BOUND_BEFORE
                  if m.group("bound") and re.fullmatch(pattern, m.group("bound"), re.IGNORECASE)), None)
    for key in ("many", "many2", "after"):
        if bound is None and m.group(key):
            bound = _EN_BOUND_AFTER[m.group(key).lower()]
    noun = m.group("noun") or ""
    if unit in ("個百分點", "个百分点"):
        noun, unit = unit, ""
    currency = ""
    if m.group("cur"):
        currency = next(sign for pattern, sign in _EN_CURRENCY_BEFORE
                        if re.fullmatch(pattern, m.group("cur"), re.IGNORECASE))
    if m.group("cur2"):
        currency = currency or _EN_CURRENCY_AFTER[m.group("cur2")]
    if unit == "成":
        value *= 10
    if m.group("pct") or unit:
        if currency or mag:
            return None
        said = f"{_plain(value)}%"
    elif noun == "年" and not (bound or currency) and value == value.to_integral() and 1000 <= value <= 2999:
        said = str(int(value))  # a year
    else:
        said = f"{currency}{english_value(value)}"
        if noun in _EN_NOUNS:
            one, many = _EN_NOUNS[noun]
            said += f" {one if value == 1 and not bound else many}"
    return f"{bound} {said}" if bound else said
