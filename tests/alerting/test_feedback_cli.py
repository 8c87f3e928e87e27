"""`pynomaly feedback`: the record it builds and the errors it reports (exit 2)."""

from __future__ import annotations

import pytest

from streams.alerting.feedback import parse_feedback
from streams.alerting.feedback_cli import FeedbackError, feedback_record
from streams.broker import free_port
from streams.cli import main


def test_the_record_is_valid_feedback_naming_stream_and_detector():
    rec = feedback_record("false_positive", "inc-1", "payments", "zscore", "alice", "deploy", ts=5.0)
    fb = parse_feedback(rec)
    assert (fb.kind, fb.incident_id, fb.stream, fb.detector, fb.by, fb.comment, fb.ts) == \
        ("false_positive", "inc-1", "payments", "zscore", "alice", "deploy", 5.0)
    with pytest.raises(FeedbackError, match="--label must be one of"):
        feedback_record("silence", "inc-1", "payments")


@pytest.mark.parametrize("argv,needle", [
    (["feedback", "", "--label", "ack", "--stream", "s"], "INCIDENT_ID is empty"),
    (["feedback", "inc-1", "--label", "ack", "--stream", " "], "--stream is empty"),
    (["feedback", "inc-1", "--label", "ack", "--stream", "s"], "cannot talk to Kafka"),
    (["feedback", "inc-1", "--label", "ack"], "cannot talk to Kafka"),
])
def test_errors_exit_2_and_say_what_to_fix(argv, needle, capsys, monkeypatch):
    monkeypatch.setenv("PYNOMALY_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")  # nobody listens
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_an_unknown_label_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["feedback", "inc-1", "--label", "maybe"])
    assert exc.value.code == 2 and "invalid choice: 'maybe'" in capsys.readouterr().err
