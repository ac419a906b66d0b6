import pyarrow as pa

from services.domain.pii import scan_pii


def findings(values, kind=None, column="c"):
    found = scan_pii(pa.table({column: pa.array(values, pa.string())}))
    return [f for f in found if kind is None or f["type"] == kind]


def finding(values, kind):
    (only,) = findings(values, kind)
    return only["count"], only["samples"]


def test_cards_need_a_valid_luhn_check():
    # 4111 1111 1111 1111 sums to 30 under Luhn, ...1112 to 31; 5500 0000 0000 0004 to 20;
    # Amex 3782 822463 10005 (15 digits) to 60.
    cells = ["4111 1111 1111 1111", "4111 1111 1111 1112", "paid 4111-1111-1111-1111 exp 12/26", None,
             "5500000000000004", "amex 3782 822463 10005", "no card 1234"]
    assert finding(cells, "card_number") == (4, ["************1111", "************0004", "***********0005"])
    assert findings(["4111 1111 1111 1112", "1234567890123"]) == []


def test_card_followed_by_more_digits_is_still_found():
    assert finding(["4111 1111 1111 1111 123"], "card_number") == (1, ["************1111"])


def test_card_separators_must_be_of_one_kind():
    # so that a list of dashed numbers separated by spaces is not one long "card"
    assert findings(["4111 1111-1111 1111"], "card_number") == []


def test_ibans_need_a_valid_mod97_check():
    cells = ["GB82 WEST 1234 5698 7654 32", "pay to DE89370400440532013000 today",
             "GB82 WEST 1234 5698 7654 33",  # last digit changed
             "GB83WEST12345698765432"]  # check digits changed
    assert finding(cells, "iban") == (2, ["GB****************5432", "DE****************3000"])
    assert [f["type"] for f in findings(cells)] == ["iban"]  # the digits inside are not cards or phones


def test_ssn_invalid_ranges_are_excluded():
    cells = ["123-45-6789", "000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456", "123-00-4567",
             "123-45-0000", "899-12-3456 and 665-01-0001", "1123-45-6789"]
    assert finding(cells, "ssn") == (2, ["***-**-6789", "***-**-3456", "***-**-0001"])


def test_phone_formats():
    cells = ["(415) 555-0100", "415-555-0101", "+1 415 555 0102", "+442079460958", "call 415.555.0103 now",
             "12345", "+123", "2024-01-15"]
    assert finding(cells, "phone") == (5, ["(***) ***-0100", "***-***-0101", "+* *** *** 0102"])


def test_a_card_number_is_not_also_a_phone():
    # +4222222222222: 13 digits, E.164-shaped, but also the Luhn-valid Visa test number 4222222222222
    # (non-doubled 2*6 + 4 = 16, doubled 6 * 4 = 24, total 40).
    assert [(f["type"], f["count"]) for f in findings(["+4222222222222"])] == [("card_number", 1)]


def test_emails():
    cells = ["john@example.com", "Contact: jane.doe@mail.example.org, john@example.com", "not @ email", "x@y.z"]
    assert finding(cells, "email") == (2, ["j***@example.com", "j***@mail.example.org"])


def test_count_is_cells_and_samples_are_at_most_three_distinct():
    cells = ["a@x.com b@x.com", "c@x.com", "d@x.com", "a@x.com", "e@x.com"]
    assert finding(cells, "email") == (5, ["a***@x.com", "b***@x.com", "c***@x.com"])
    assert finding(["415-555-0100"] * 4 + [None, ""], "phone") == (4, ["***-***-0100"])


def test_counts_per_column_sorted_by_column_then_type():
    table = pa.table({
        "z": ["john@example.com", "none", "amy@example.com"],
        "a": ["123-45-6789 or 415-555-0100", "415-555-0100", "clean"],
        "clean": ["x", "y", "z"],
    })
    assert scan_pii(table) == [
        {"column": "a", "type": "phone", "count": 2, "samples": ["***-***-0100"]},
        {"column": "a", "type": "ssn", "count": 1, "samples": ["***-**-6789"]},
        {"column": "z", "type": "email", "count": 2, "samples": ["j***@example.com", "a***@example.com"]},
    ]


def test_non_string_columns_are_ignored():
    table = pa.table({"card": pa.array([4111111111111111], pa.int64()), "amount": [1.5],
                      "note": pa.array(["4111111111111111"], pa.large_string())})
    assert [(f["column"], f["type"]) for f in scan_pii(table)] == [("note", "card_number")]


def test_clean_and_empty_tables():
    assert scan_pii(pa.table({"a": ["x", None, "2024-01-01T00:00:00Z", "ACC-001"]})) == []
    assert scan_pii(pa.table({"a": pa.array([], pa.string())})) == []
    assert scan_pii(pa.table({})) == []
