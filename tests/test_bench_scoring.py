"""Scorers as the paper's benchmarks define them."""

from __future__ import annotations

import pytest

from bench import scoring, tokens


def test_oolong_number_partial_credit() -> None:
    gold = {"kind": "number", "value": 10}
    assert scoring.oolong_score("Answer: 10", gold, []) == 1.0
    assert scoring.oolong_score("There are 12 such lines.", gold, []) == pytest.approx(0.75**2)
    assert scoring.oolong_score("no idea", gold, []) == 0.0


def test_oolong_dates_labels_users() -> None:
    labels = ["abbreviation", "entity", "description and abstract concept", "human being", "location", "numeric value"]
    assert scoring.oolong_score("Answer: Mar 2023", {"kind": "date", "value": "March 2023"}, labels) == 1.0
    assert scoring.oolong_score("2023-03", {"kind": "date", "value": "March 2023"}, labels) == 1.0
    assert scoring.oolong_score("April 2023", {"kind": "date", "value": "March 2023"}, labels) == 0.0
    assert scoring.oolong_score("location", {"kind": "label", "value": "location"}, labels) == 1.0
    assert (
        scoring.oolong_score("The most common is human being.", {"kind": "label", "value": "human being"}, labels)
        == 1.0
    )
    assert scoring.oolong_score("location or entity", {"kind": "label", "value": "location"}, labels) == 0.0
    assert scoring.oolong_score("User 48598", {"kind": "user", "value": "48598"}, labels) == 1.0


def test_pairs_f1() -> None:
    want = {("10001", "10002"), ("10003", "10004")}
    assert scoring.f1_sets(scoring.parse_pairs("(10002, 10001)\n(10003, 10004)"), want) == 1.0
    assert scoring.f1_sets(scoring.parse_pairs("(10001, 10002)"), want) == pytest.approx(2 / 3)
    assert scoring.f1_sets(scoring.parse_pairs("none"), want) == 0.0


def test_em_and_token_f1() -> None:
    assert scoring.exact_match("The Eiffel Tower.", "Eiffel Tower") == 1.0
    assert scoring.token_f1("Eiffel Tower in Paris", "the Eiffel Tower") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert scoring.token_f1("yes", "no") == 0.0


def test_choice_letter() -> None:
    opts = ["ValueError", "TypeError", "KeyError", "OSError"]
    assert scoring.choice_score("B", "B", opts) == 1.0
    assert scoring.choice_score("The answer is (C).", "C", opts) == 1.0
    assert scoring.choice_score("It raises KeyError", "C", opts) == 1.0
    assert scoring.choice_score("A or B", "B", opts) == 0.0


def test_substring_match() -> None:
    assert scoring.substring_match("The number is 1234567.", "1234567") == 1.0
    assert scoring.substring_match("1234568", "1234567") == 0.0


def test_token_count_is_exact_across_pieces() -> None:
    """The piecewise count equals one encode of the whole text, with and without newlines."""
    enc = tokens._encoding()  # the pinned bpe-openai cl100k_base encoding
    prose = " ".join(f"word{i}, and then: 12345 more." for i in range(3000))
    code = "\n".join(f"def f{i}(x):\n    return x + {i}  # ok\n\n" for i in range(1500))
    old = tokens._PIECE
    try:
        tokens._PIECE = 997
        for text in (prose, code):
            assert tokens.count(text) == len(enc.encode_ordinary(text))
    finally:
        tokens._PIECE = old
