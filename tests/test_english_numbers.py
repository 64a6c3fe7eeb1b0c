"""Numbers said in English (``english_number``): the value, bound, currency and counter the
source states, and nothing else; the checks read every result back to the source's value."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rag.answer.written.numbers import english_number, english_value, number_faithful, number_forms


@pytest.mark.parametrize(
    ("source", "english"),
    [
        # magnitudes (繁體, 简体)
        ("330億", "33 billion"),
        ("330亿", "33 billion"),
        ("2.5萬", "25,000"),
        ("2.5万", "25,000"),
        ("3.45億", "345 million"),
        ("12.5亿", "1.25 billion"),
        ("0.5億", "50 million"),
        ("1200萬", "12 million"),
        ("1萬億", "1 trillion"),
        ("三百億", "30 billion"),
        ("一千二百", "1,200"),
        ("1,200", "1,200"),
        ("1.5", "1.5"),
        # bounds, before and after the number
        ("超過50條", "more than 50"),
        ("超过50条", "more than 50"),
        ("逾1,000名", "more than 1,000 people"),
        ("50多條", "more than 50"),
        ("90多个", "more than 90"),
        ("50多萬", "more than 500,000"),
        ("100萬以上", "at least 1 million"),
        ("至少3間", "at least 3"),
        ("不少於20個", "at least 20"),
        ("不少于20个", "at least 20"),
        ("約2.5萬人", "about 25,000 people"),
        ("约2.5万人", "about 25,000 people"),
        ("200人左右", "about 200 people"),
        ("近百分之四十", "nearly 40%"),
        ("將近8,000人", "nearly 8,000 people"),
        ("不超過5年", "at most 5 years"),
        ("不足10%", "less than 10%"),
        # shares
        ("百分之三十", "30%"),
        ("百分之3.5", "3.5%"),
        ("30%", "30%"),
        ("30％", "30%"),
        ("三成", "30%"),
        ("超过30%", "more than 30%"),
        ("3個百分點", "3 percentage points"),
        # money
        ("330億港元", "HK$33 billion"),
        ("HK$330億", "HK$33 billion"),
        ("港幣330億元", "HK$33 billion"),
        ("港币330亿元", "HK$33 billion"),
        ("3億元", "$300 million"),
        ("5億美元", "US$500 million"),
        ("人民幣100萬", "RMB 1 million"),
        ("逾HK$1億", "more than HK$100 million"),
        # counters with a noun, years
        ("1名", "1 person"),
        ("2倍", "2 times"),
        ("10年", "10 years"),
        ("2024年", "2024"),
        ("五所", "5"),
        # English as written stays as it is said
        ("more than 50", "more than 50"),
        ("HK$3.3 billion", "HK$3.3 billion"),
        ("about 25,000", "about 25,000"),
        ("33 billion", "33 billion"),
    ],
)
def test_a_number_is_said_in_english_and_reads_back_to_the_source(source: str, english: str) -> None:
    assert english_number(source) == english
    assert number_faithful(english, source)  # the checks accept it against the source


@pytest.mark.parametrize("text", ["", "   ", "abc", "生產力局", "陳祖恒", "生產力局主席", "50條生產線", "萬一",
                                  "百分之", "HK$", "第三", "3月5日", "about", "2024年的報告"])
def test_what_is_not_one_number_gives_none(text: str) -> None:
    assert english_number(text) is None


def test_a_bound_is_never_dropped_and_a_magnitude_never_misread() -> None:
    assert not number_faithful("330 billion", "330億")
    assert not number_faithful("50", "超過50條")
    assert number_faithful(english_number("90多條") or "", "90多條")
    # a bound stays a bound through a magnitude word: 超過330億 is not "33 billion"
    assert not number_faithful("It was $33 billion.", "增加至超過330億元")
    assert number_faithful("It was more than $33 billion.", "增加至超過330億元")


def test_lone_numerals_with_a_counter_and_tenths_are_read() -> None:
    assert number_forms("五所世界百強大學") >= {"5"}
    assert number_forms("約三成企業") >= {"30"}
    assert "1" not in number_forms("一個中心")  # 一 before a counter is "a"
    assert number_forms("十五所") >= {"15"} and "5" not in number_forms("十五所")


def test_english_value() -> None:
    assert english_value(Decimal(33_000_000_000)) == "33 billion"
    assert english_value(Decimal(25_000)) == "25,000"
    assert english_value(Decimal(1_234_567)) == "1,234,567"  # not a round million: digits
    assert english_value(Decimal("2.50")) == "2.5"
