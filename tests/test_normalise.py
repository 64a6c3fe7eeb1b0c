from rag.text.normalise import Normaliser, cjk_ratio, has_cjk


def test_simplified_and_traditional_normalise_to_one_script():
    n = Normaliser("t2s")
    assert n.normalise("工業化") == n.normalise("工业化")
    assert n.tokenise("推進新型工業化") == n.tokenise("推进新型工业化")


def test_nfkc_and_case_folding():
    n = Normaliser("t2s")
    assert n.normalise("ＡＰＥＣ　２０２４") == "apec 2024"
    assert n.tokenise("FLAIR") == n.tokenise("flair") == ["flair"]


def test_punctuation_does_not_matter():
    n = Normaliser("t2s")
    assert n.tokenise("「智方便」") == n.tokenise('"智方便"') == n.tokenise("智方便")


def test_english_words_lowercased_and_lightly_stemmed():
    n = Normaliser("t2s")
    assert n.tokenise("Councils running") == ["council", "run"]


def test_script_detection_helpers():
    assert has_cjk("香港 AI")
    assert not has_cjk("Hong Kong")
    assert cjk_ratio("Hong Kong") == 0.0
    assert cjk_ratio("香港") == 1.0


def test_config_is_recorded():
    cfg = Normaliser("hk2s").config()
    assert cfg["opencc"] == "hk2s" and cfg["unicode"] == "NFKC"
