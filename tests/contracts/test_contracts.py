from pathlib import Path

import pytest

from fairway_contracts import asyncapi, streams, subjects

ROOT = Path(__file__).resolve().parents[2]


def test_committed_asyncapi_document_is_current():
    committed = (ROOT / "docs" / "asyncapi.json").read_text()
    assert committed == asyncapi.render(), (
        "docs/asyncapi.json is stale: run `make asyncapi` and commit it")


def test_every_consumer_reads_a_declared_stream_and_has_a_channel():
    names = {s.name for s in streams.STREAMS}
    for consumer in streams.CONSUMERS:
        assert consumer.stream in names
        assert asyncapi._channel_for(consumer)
        assert 1 < consumer.max_deliver < 100


def test_phase_subjects_filter_by_phase_project_and_workload():
    subject = subjects.phase("team-a", "0b0e", "Running")
    assert subject == "fairway.phase.team-a.0b0e.Running"
    assert subjects.phase_filter(phase="Running") == "fairway.phase.*.*.Running"
    assert subjects.phase_filter(project="team-a") == "fairway.phase.team-a.*.*"
    assert subjects.phase_filter(workload_id="0b0e") == "fairway.phase.*.0b0e.*"


@pytest.mark.parametrize("bad", ["a.b", "a*", "a>", "", "a b"])
def test_subject_tokens_cannot_break_the_hierarchy(bad):
    with pytest.raises(ValueError):
        subjects.phase(bad, "w", "Running")


def test_retry_delays_grow_and_cap():
    spec = streams.LIFECYCLE_WORKLOADS
    delays = [spec.retry_delay(n) for n in range(1, 12)]
    assert delays == sorted(delays)
    assert delays[-1] == spec.retry_delays_seconds[-1]


def test_an_effective_spec_kept_with_a_bare_serving_port_reads_as_the_object():
    from fairway_contracts import EffectiveSpec

    spec = EffectiveSpec.model_validate({"image": "vllm", "priorityClass": "inference",
                                         "preemptible": False, "backoffLimit": 6,
                                         "servingPort": 8000})

    assert spec.serving_port.container == 8000 and spec.serving_port.protocol == "http"
    assert spec.serving_port.service_port == 80
    grpc = spec.serving_port.model_copy(update={"protocol": "grpc"})
    assert grpc.service_port == 8000
