"""A receipt names only seqs an envelope may carry: 1 to 2**63 - 1, in the model and the schema."""

from __future__ import annotations

import json

import jsonschema
import pytest

from protocol import InvalidMessage, Receipt, parse_message
from protocol.limits import INT64_MAX
from protocol.schema import SCHEMA_DIR

STREAM = "0123456789abcdef0123456789abcdef"
OUT_OF_CONTRACT = [
    [[1, INT64_MAX + 1]],
    [[2**64, 2**64]],
    [[0, 5]],
    [[-3, 2]],
    [[1, 2], [5, 2**70]],
]


def _receipt(ranges: list[list[int]]) -> dict[str, object]:
    return {"v": 1, "stream": STREAM, "ranges": ranges}


@pytest.mark.parametrize("ranges", OUT_OF_CONTRACT, ids=str)
def test_receipt_with_a_seq_outside_int64_or_below_one_is_refused_with_a_reason(
    ranges: list[list[int]],
) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_message(Receipt, json.dumps(_receipt(ranges)).encode())
    assert any("ranges" in reason for reason in caught.value.reasons)


@pytest.mark.parametrize("ranges", OUT_OF_CONTRACT, ids=str)
def test_receipt_schema_refuses_what_the_model_refuses(ranges: list[list[int]]) -> None:
    schema = json.loads((SCHEMA_DIR / "receipt.schema.json").read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_receipt(ranges), schema)


def test_receipt_up_to_the_largest_int64_seq_is_accepted_by_model_and_schema() -> None:
    good = _receipt([[1, 3], [INT64_MAX, INT64_MAX]])
    schema = json.loads((SCHEMA_DIR / "receipt.schema.json").read_text(encoding="utf-8"))

    jsonschema.validate(good, schema)
    receipt = parse_message(Receipt, json.dumps(good).encode())
    assert receipt.covers(INT64_MAX)
    assert not receipt.covers(4)
