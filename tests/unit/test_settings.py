import pytest

from streams.errors import SettingsError
from streams.settings import Secret, load_settings


def test_defaults():
    s = load_settings(environ={})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.web_port == 6066
    assert s.topic_events == "pynomaly.events"
    assert not s.dev_broker


def test_env_overrides_toml(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('app_id = "from-toml"\nweb_port = 7000\ntopic_partitions = 3\n[detectors]\ndefault = "zscore"\n')
    s = load_settings(cfg, environ={"PYNOMALY_WEB_PORT": "7100"})
    assert s.app_id == "from-toml" and s.web_port == 7100 and s.topic_partitions == 3
    assert s.extra["detectors"] == {"default": "zscore"}


def test_config_from_env_variable(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('app_id = "x"\n')
    assert load_settings(environ={"PYNOMALY_CONFIG": str(cfg)}).app_id == "x"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"PYNOMALY_WEB_PORT": "abc"}, "PYNOMALY_WEB_PORT"),
        ({"PYNOMALY_WEB_PORT": "70000"}, "web_port"),
        ({"PYNOMALY_KAFKA_BOOTSTRAP": "localhost"}, "host:port"),
        ({"PYNOMALY_DEV_BROKER": "maybe"}, "boolean"),
        ({"PYNOMALY_THRESHOLD": "2"}, "(0, 1]"),
        ({"PYNOMALY_TOPIC_PARTITIONS": "0"}, "PYNOMALY_TOPIC_PARTITIONS"),
        ({"PYNOMALY_KAFKA_SECURITY_PROTOCOL": "TLS"}, "SASL_SSL"),
    ],
)
def test_invalid_values_name_the_setting_and_the_expected_form(env, needle):
    with pytest.raises(SettingsError) as info:
        load_settings(environ=env)
    assert needle in str(info.value)
    assert "expected" in str(info.value)


def test_unknown_toml_key_and_missing_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("web_prot = 1\n")
    with pytest.raises(SettingsError, match="web_prot"):
        load_settings(cfg, environ={})
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    cfg.write_text("this is = = not toml")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(cfg, environ={})


def test_dev_broker_profile_shortens_group_timeouts_only_when_asked():
    prod = load_settings(environ={})
    dev = load_settings(environ={"PYNOMALY_DEV_BROKER": "1"})
    assert prod.session_timeout_s >= 10
    assert dev.session_timeout_s <= 4 and dev.heartbeat_interval_s <= 1


def test_secrets_do_not_show_in_repr():
    s = load_settings(environ={"PYNOMALY_KAFKA_SASL_PASSWORD": "hunter2-secret"})
    assert isinstance(s.kafka_sasl_password, Secret)
    assert "hunter2-secret" not in repr(s)
    assert s.kafka_sasl_password.reveal() == "hunter2-secret"


def test_short_state_hmac_key_rejected():
    """A checkpoint signing key under 16 characters is refused, and the error does not echo it."""
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"PYNOMALY_STATE_HMAC_KEY": "k" * 15})
    assert "state_hmac_key" in str(info.value) and "16" in str(info.value)
    assert "k" * 15 not in str(info.value)
    assert load_settings(environ={"PYNOMALY_STATE_HMAC_KEY": "k" * 16}).state_hmac_key == "k" * 16
    assert load_settings(environ={}).state_hmac_key == ""  # empty: checkpoints off, allowed


# Every validator in Settings.__post_init__, at its boundary: the last accepted value and
# the first refused one. A validator loosened or tightened by one makes one side fail.
BOUNDARIES = [
    ("TOPIC_PARTITIONS", "1", "0", "topic_partitions"),
    ("TOPIC_REPLICATION", "1", "0", "topic_replication"),
    ("WEB_PORT", "65535", "65536", "web_port"),
    ("WEB_PORT", "1", "0", "web_port"),
    ("THRESHOLD", "1.0", "1.0000001", "threshold"),
    ("THRESHOLD", "0.000001", "0", "threshold"),
    ("MAX_RECORD_BYTES", "64", "63", "max_record_bytes"),
    ("BATCH_MAX_EVENTS", "1", "0", "batch_max_events"),
    ("MAX_STREAMS_IN_MEMORY", "0", "-1", "max_streams_in_memory"),
    ("BATCH_WITHIN_S", "0.001", "0", "batch_within_s"),
    ("WARMUP_EVENTS", "0", "-1", "warmup_events"),
    ("CHECKPOINT_INTERVAL_S", "0.001", "0", "checkpoint_interval_s"),
    ("STATE_HMAC_KEY", "s" * 16, "s" * 15, "state_hmac_key"),
    ("LOG_LEVEL", "ERROR", "trace", "log_level"),
    ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "sasl_ssl", "kafka_security_protocol"),
    ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", "GSSAPI", "kafka_sasl_mechanism"),
    ("KAFKA_BOOTSTRAP", "a:1,b:2", "a:1,b", "kafka_bootstrap"),
    ("KAFKA_BOOTSTRAP", "[::1]:9092", ":9092", "kafka_bootstrap"),
]


@pytest.mark.parametrize(("var", "ok", "bad", "name"), BOUNDARIES,
                         ids=[f"{b[0]}={b[2]}" for b in BOUNDARIES])
def test_every_settings_validator_at_its_boundary(var, ok, bad, name):
    load_settings(environ={f"PYNOMALY_{var}": ok})  # the boundary itself is accepted
    with pytest.raises(SettingsError) as info:
        load_settings(environ={f"PYNOMALY_{var}": bad})
    assert name in str(info.value) and "expected" in str(info.value)
