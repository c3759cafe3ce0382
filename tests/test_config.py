"""``Settings``: values from the environment and their bounds, named as the user set them."""

import pytest

from memegen.config import SettingError, Settings


@pytest.mark.parametrize(("name", "value"), [
    ("port", 65536),
    ("port", -1),
    ("threads", 0),
    ("max_upload_bytes", -1),
    ("max_pixels", 0),
    ("decode_max_side", 0),
    ("output_max_side", 0),
    ("min_side", 0),
    ("meme_ttl_seconds", -1),
    ("rate_limit_per_minute", -1),
])
def test_a_setting_out_of_range_is_refused_naming_it(name, value):
    with pytest.raises(SettingError) as refused:
        Settings(**{name: value})
    assert str(refused.value).startswith(f"{name} must be ")
    assert str(refused.value).endswith(f", not {value}")


def test_zero_is_allowed_where_it_means_something():
    settings = Settings(port=0, rate_limit_per_minute=0, meme_ttl_seconds=0,
                        animation_max_frames=0)
    assert (settings.port, settings.rate_limit_per_minute) == (0, 0)


def test_an_environment_value_out_of_range_is_refused_naming_its_variable():
    with pytest.raises(SettingError) as refused:
        Settings.from_env({"MEMEGEN_THREADS": "0"})
    assert str(refused.value) == "MEMEGEN_THREADS must be from 1 to 256, not 0"


def test_an_environment_value_that_is_not_a_number_is_refused_naming_its_variable():
    with pytest.raises(SettingError) as refused:
        Settings.from_env({"MEMEGEN_PORT": "abc"})
    assert str(refused.value) == "MEMEGEN_PORT='abc' is not a valid int"


def test_a_flag_out_of_range_is_refused_naming_the_setting():
    with pytest.raises(SettingError) as refused:
        Settings.from_env({}, port=99999)
    assert str(refused.value) == "port must be from 0 to 65535, not 99999"


def test_a_flag_overrides_a_bad_environment_value_without_reading_it():
    settings = Settings.from_env({"MEMEGEN_PORT": "abc"}, port=8080)
    assert settings.port == 8080


def test_an_empty_host_is_refused_rather_than_read_as_every_interface():
    with pytest.raises(SettingError, match=r"^host must not be empty"):
        Settings.from_env({}, host=" ")
    with pytest.raises(SettingError, match=r"^MEMEGEN_HOST must not be empty"):
        Settings.from_env({"MEMEGEN_HOST": " "})


@pytest.mark.parametrize("raw", ["1_000", "+7", "\u0663", "0x10", "5."])
def test_a_number_setting_takes_plain_decimal_digits_only(raw):
    with pytest.raises(SettingError, match=r"^MEMEGEN_THREADS=.* is not a valid int$"):
        Settings.from_env({"MEMEGEN_THREADS": raw})


def test_a_number_setting_may_have_spaces_around_it():
    assert Settings.from_env({"MEMEGEN_THREADS": " 3 "}).threads == 3


@pytest.mark.parametrize(("variable", "raw", "message"), [
    ("MEMEGEN_MEME_TTL_SECONDS", "1000000000000",
     "MEMEGEN_MEME_TTL_SECONDS must be from 0 to 315360000, not 1000000000000"),
    ("MEMEGEN_THREADS", "99999", "MEMEGEN_THREADS must be from 1 to 256, not 99999"),
])
def test_a_number_past_what_the_server_can_use_is_refused(variable, raw, message):
    """A lifetime past the year 9999 gave every meme a 500; each thread starts up front."""
    with pytest.raises(SettingError) as refused:
        Settings.from_env({variable: raw})
    assert str(refused.value) == message


@pytest.mark.parametrize("watermark", ["你好", "a\x01b"])
def test_a_watermark_the_fonts_cannot_draw_is_refused_naming_the_characters(watermark):
    with pytest.raises(SettingError, match="the watermark uses characters"):
        Settings.from_env({"MEMEGEN_WATERMARK": watermark})
