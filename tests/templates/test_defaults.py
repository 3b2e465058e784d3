"""The shipped booking texts, and the rendering helpers they rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from smsgateway.booking import EVENT_TYPES, RECIPIENTS
from smsgateway.templates.defaults import (
    PLACEHOLDERS,
    SAMPLE_VALUES,
    offered_placeholders,
)
from smsgateway.templates.render import (
    TemplateError,
    check_template,
    first_name,
    format_when,
    placeholders_in,
    render,
    resolve_language,
)
from smsgateway.texts import DEFAULT_TEMPLATES

# GSM 03.38 default alphabet (without the escape) and its extension table, whose
# characters take two septets. Kept local: these tests only need a rough part count.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "\f^{}\\[~]|€"


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def sms_parts(text: str) -> int:
    if is_gsm7(text):
        units, single, multi = sum(2 if c in GSM7_EXTENSION else 1 for c in text), 160, 153
    else:
        units, single, multi = sum(2 if ord(c) > 0xFFFF else 1 for c in text), 70, 67
    return 1 if units <= single else -(-units // multi)


PAIRS = [(event_type, role) for event_type in EVENT_TYPES for role in RECIPIENTS[event_type]]


def worst_case_values(event_type: str, role: str) -> dict[str, str]:
    return {name: "x" * length for name, length in offered_placeholders(event_type, role).items()}


def test_nine_recipient_pairs_each_with_placeholders() -> None:
    assert set(RECIPIENTS) == set(EVENT_TYPES)
    assert len(PAIRS) == 9
    assert set(PLACEHOLDERS) == set(PAIRS)


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize(("event_type", "role"), PAIRS)
def test_default_exists_in_english_and_french(event_type: str, role: str, language: str) -> None:
    assert (event_type, role, language) in DEFAULT_TEMPLATES


def test_defaults_only_for_recipient_pairs() -> None:
    assert {(event_type, role) for event_type, role, _ in DEFAULT_TEMPLATES} == set(PAIRS)


@pytest.mark.parametrize(("key", "template"), DEFAULT_TEMPLATES.items(), ids=str)
def test_default_uses_only_offered_placeholders(key: tuple[str, str, str], template: str) -> None:
    event_type, role, _ = key
    check_template(template, offered_placeholders(event_type, role))
    used = placeholders_in(template)
    assert "booking_title" in used
    assert "starts_at" in used


@pytest.mark.parametrize(
    "language", sorted({lang for t, r, lang in DEFAULT_TEMPLATES if t == "booking.requested"})
)
def test_booking_request_says_how_to_answer_by_reply(language: str) -> None:
    template = DEFAULT_TEMPLATES[("booking.requested", "offeror", language)]
    assert {"reply_yes", "reply_no", "other_name"} <= set(placeholders_in(template))


@pytest.mark.parametrize(("key", "template"), DEFAULT_TEMPLATES.items(), ids=str)
def test_default_at_worst_case_length_fits_one_gsm7_part(
    key: tuple[str, str, str], template: str
) -> None:
    text = render(template, worst_case_values(key[0], key[1]))
    assert is_gsm7(text), "a non-GSM character would make the SMS UCS-2"
    assert len(text) <= 160
    assert sms_parts(text) <= 2  # the hard limit; one part is what the defaults achieve


@pytest.mark.parametrize(("key", "template"), DEFAULT_TEMPLATES.items(), ids=str)
def test_default_has_no_curly_quotes(key: tuple[str, str, str], template: str) -> None:
    assert not set(template) & set("\u2018\u2019\u201a\u201c\u201d\u201e\u00ab\u00bb")


def test_booking_request_in_english_reads_as_expected() -> None:
    text = render(DEFAULT_TEMPLATES[("booking.requested", "offeror", "en")], SAMPLE_VALUES)
    assert text == (
        "Booking request from Anna: Kayak for two on Tue, Dec 1, 9:00 AM."
        " Reply YES to accept or NO to refuse."
    )


def test_sample_values_cover_every_placeholder_within_its_maximum() -> None:
    for offered in PLACEHOLDERS.values():
        for name, maximum in offered.items():
            assert 0 < len(SAMPLE_VALUES[name]) <= maximum


def test_offered_placeholders_is_a_copy_and_rejects_unknown_pairs() -> None:
    offered_placeholders("booking.requested", "offeror")["booking_title"] = 999
    assert PLACEHOLDERS[("booking.requested", "offeror")]["booking_title"] == 40
    assert "expires_at" not in offered_placeholders("booking.accepted", "asker")
    with pytest.raises(KeyError):
        offered_placeholders("booking.accepted", "offeror")


# --- format_when -----------------------------------------------------------------

DEC_1_9AM_PARIS = datetime.fromisoformat("2026-12-01T09:00:00+01:00")


@pytest.mark.parametrize(("language", "month"), [("en", "Dec"), ("fr", "déc")])
def test_format_when_shows_local_date_and_time(language: str, month: str) -> None:
    text = format_when(DEC_1_9AM_PARIS, language)
    assert "9" in text
    assert month in text
    assert "1" in text


def test_format_when_keeps_the_given_offset() -> None:
    assert "09:00" in format_when(DEC_1_9AM_PARIS, "fr")
    assert "08:00" not in format_when(DEC_1_9AM_PARIS, "fr")
    assert "9:00" in format_when(DEC_1_9AM_PARIS, "en")
    new_york = DEC_1_9AM_PARIS.astimezone(timezone(timedelta(hours=-5)))
    assert "03:00" in format_when(new_york, "fr")


def test_format_when_treats_naive_times_as_utc() -> None:
    naive = datetime(2026, 12, 1, 9, 0)
    assert format_when(naive, "fr") == format_when(naive.replace(tzinfo=UTC), "fr")
    assert "09:00" in format_when(naive, "fr")


@pytest.mark.parametrize("language", ["xx", "??", "", "zz-ZZ"])
def test_format_when_falls_back_to_english(language: str) -> None:
    assert format_when(DEC_1_9AM_PARIS, language) == format_when(DEC_1_9AM_PARIS, "en")


@pytest.mark.parametrize(
    ("language", "month"), [("fr-CA", "déc"), ("fr_FR", "déc"), ("en-GB", "Dec")]
)
def test_format_when_accepts_region_tags(language: str, month: str) -> None:
    assert month in format_when(DEC_1_9AM_PARIS, language)


@pytest.mark.parametrize("language", ["en", "fr", "de"])
def test_format_when_fits_starts_at_in_gsm7_all_year(language: str) -> None:
    # Every day of a year (so every month and weekday) at a two-digit hour: the value
    # must respect the declared maximum of starts_at/expires_at and keep SMS in GSM 03.38.
    year_start = datetime(2026, 1, 1, 12, 59)
    moments = [year_start + timedelta(days=day) for day in range(365)]
    moments += [datetime(2026, 9, 30, hour, 59) for hour in (0, 11, 23)]
    for moment in moments:
        text = format_when(moment, language)
        assert len(text) <= PLACEHOLDERS[("booking.requested", "offeror")]["starts_at"], text
        assert is_gsm7(text), text


# --- resolve_language ------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("fr", "fr"),
        ("FR", "fr"),
        ("pt-BR", "pt"),
        ("pt_br", "pt"),
        ("fr-CA", "fr"),
        ("en-US", "en-US"),
        ("en_us", "en-US"),
        ("xx", "de"),
        (None, "de"),
        ("", "de"),
    ],
)
def test_resolve_language_fallback_chain(requested: str | None, expected: str) -> None:
    assert resolve_language(requested, ["fr", "pt", "en-US", "de"], default="de") == expected


def test_resolve_language_default_then_english() -> None:
    assert resolve_language("xx", ["fr", "en"], default="de-AT") == "en"
    assert resolve_language("xx", ["fr", "de"], default="de-AT") == "de"
    with pytest.raises(LookupError):
        resolve_language("xx", ["fr"], default="de")


# --- placeholders_in / check_template / render -------------------------------------


def test_placeholders_in_lists_each_name_once_in_order() -> None:
    template = "{b} and {a}, {{literal}} again {b}"
    assert placeholders_in(template) == ["b", "a"]


@pytest.mark.parametrize(
    ("template", "placeholder"),
    [
        ("Hi {name", None),
        ("Hi name}", None),
        ("Hi {}", None),
        ("Hi {0}", "0"),
        ("Hi {user.name}", "user.name"),
        ("Hi {names[0]}", "names[0]"),
        ("Hi {name!r}", "name"),
        ("Hi {name:>10}", "name"),
        ("Hi { name }", " name "),
    ],
)
def test_placeholders_in_rejects_malformed_fields(template: str, placeholder: str | None) -> None:
    with pytest.raises(TemplateError) as caught:
        placeholders_in(template)
    assert caught.value.placeholder == placeholder
    if placeholder:
        assert placeholder in str(caught.value)


def test_check_template_names_the_first_unknown_placeholder() -> None:
    with pytest.raises(TemplateError) as caught:
        check_template("{booking_title} {price} {fee}", ["booking_title", "starts_at"])
    assert caught.value.placeholder == "price"
    assert "{price}" in str(caught.value)
    assert "{starts_at}" in str(caught.value)  # tells the admin what is allowed


def test_render_fills_placeholders_and_keeps_literal_braces() -> None:
    assert render("{{x}} {name}: {title}", {"name": "Anna", "title": "Kayak"}) == (
        "{x} Anna: Kayak"
    )


def test_render_names_the_missing_value() -> None:
    with pytest.raises(TemplateError) as caught:
        render("{booking_title} on {starts_at}", {"booking_title": "Kayak"})
    assert caught.value.placeholder == "starts_at"
    assert "starts_at" in str(caught.value)


def test_template_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        render("{a.b}", {"a": "x"})


# --- first_name --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Anna", "Anna"),
        ("  Marc Dupont ", "Marc"),
        ("Jean-Pierre\tMartin", "Jean-Pierre"),
        ("", ""),
        ("   ", ""),
        ("Wolfeschlegelsteinhausenbergerdorff", "Wolfeschlegelsteinha"),
    ],
)
def test_first_name(name: str, expected: str) -> None:
    assert first_name(name) == expected


def test_the_same_instant_in_two_offsets_shows_each_wall_clock() -> None:
    """Equal aware datetimes: the kept texts are told apart by their offset."""
    paris = datetime(2026, 12, 1, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    utc = paris.astimezone(UTC)
    assert paris == utc
    assert format_when(paris, "en") == "Tue, Dec 1, 9:00 AM"
    assert format_when(utc, "en") == "Tue, Dec 1, 8:00 AM"
    assert format_when(paris, "en") == "Tue, Dec 1, 9:00 AM"
