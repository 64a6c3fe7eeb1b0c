"""The regression gate on the real pipeline: a slightly worse retriever must fail it."""

from __future__ import annotations

import pytest

from rag.evaluation.runner import default_target, run_eval

from .conftest import EXTERNAL

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_a_higher_lexical_weight_fails_the_gate_and_names_the_questions(corpus_service, corpus_settings,
                                                                         encoder, tmp_path):
    if not (EXTERNAL / "xquad/zh-dev/queries.jsonl").is_file():
        pytest.skip(f"external sets not found in {EXTERNAL}")
    target = default_target()
    target.encoder = encoder

    def run(settings, name, baseline=None):
        return run_eval(None, index_dir=corpus_settings.index_dir, report_dir=tmp_path / name,
                        sets=["gold", "xquad/zh-dev"], baseline=baseline, settings=settings,
                        target=target, external_dir=EXTERNAL)

    good = run(corpus_settings, "good")
    assert good.passed, good.gate_failures
    same = run(corpus_settings, "same", tmp_path / "good/results.json")
    assert same.passed and all(c.verdict == "same" for c in same.changes)

    worse = run(corpus_settings.model_copy(update={"lexical_weight": 0.6}), "worse", tmp_path / "good/results.json")
    assert not worse.passed
    regressions = [f for f in worse.gate_failures if f.startswith("regression: ")]
    assert any(f.startswith("regression: xquad/zh-dev [overall] recall@1") for f in regressions), worse.gate_failures
    # the absolute floors alone would not have caught it
    assert not [f for f in worse.gate_failures if not f.startswith("regression: ")]
    report = (tmp_path / "worse/report.md").read_text(encoding="utf-8")
    assert "**WORSE**" in report and "### Questions that got worse" in report
    assert "— gold xquad-zh:" in report and "rank 1 → " in report
