"""Generation stops when the answer is complete: a JSON object closed, a whole label."""

from __future__ import annotations

import pytest

from ladder.engines.base import GenRequest, answer_end
from ladder.engines.fake import FakeEngine

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}}


@pytest.mark.parametrize(
    ("text", "end"),
    [
        (' {"a": "x"} and then more text', 11),
        (' {"a": "}"}', 11),
        (' {"a": "\\"}"} tail', 13),
        (' {"a": {"b": 1}', None),
        ("no object yet", None),
        ('```json\n{"a": 1}\n```', 16),
    ],
)
def test_json_answers_end_when_the_top_level_object_closes(text, end):
    assert answer_end(text, GenRequest("p", json_schema=SCHEMA)) == end


@pytest.mark.parametrize(
    ("text", "choices", "end"),
    [
        (" spam", ["spam", "work"], 5),
        (" spam ", ["spam", "work"], 5),
        (" sp", ["spam", "work"], None),
        (" work", ["work", "work-urgent"], None),  # a longer label may still follow
        (" work-urgent", ["work", "work-urgent"], 12),
    ],
)
def test_labels_end_when_no_longer_label_can_follow(text, choices, end):
    assert answer_end(text, GenRequest("p", choices=choices)) == end


def test_the_fake_engine_stops_where_the_answer_is_complete():
    eng = FakeEngine(responder=lambda r: ' {"a": "x"} and so on until the limit')
    comp = eng.generate([GenRequest("p", json_schema=SCHEMA, stop=["\n"])])[0]
    assert comp.text == ' {"a": "x"}'
    assert comp.tokens_out == 2  # only what was generated up to the close counts
    plain = eng.generate([GenRequest("p", stop=["\n"])])[0]
    assert plain.text.endswith("the limit")
