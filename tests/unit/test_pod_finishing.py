"""Which failed deletes the finisher tries again (the pod's record stays open meanwhile) and which it leaves
to the next start and the garbage collector: every answer the client's error tree can give."""

from __future__ import annotations

import pytest

from gateway.clusters.kubeapi import errors as kube
from gateway.clusters.kubeapi.errors import error_for
from gateway.credentials.base import CredentialError
from gateway.pods.finishing import passing


@pytest.mark.parametrize(
    ("status", "again"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (409, False),
        (410, False),
        (422, False),
        (429, True),
        (500, True),
        (501, False),
        (502, True),
        (503, True),
        (504, True),
    ],
)
def test_an_answer_is_tried_again_only_when_another_attempt_may_not_meet_it(status: int, again: bool) -> None:
    assert passing(error_for(status, "{}", cluster="c", call="DELETE pods")) is again


@pytest.mark.parametrize(
    ("error", "again"),
    [
        (kube.ApiUnreachable("refused", cluster="c"), True),
        (kube.StreamSilent("silent", cluster="c"), True),
        (kube.GatewayExhausted("out of descriptors", cluster="c"), True),
        (kube.KubeError("something else", cluster="c"), False),
        (CredentialError("token endpoint down"), True),
    ],
)
def test_no_answer_at_all_is_tried_again(error: kube.KubeError | CredentialError, again: bool) -> None:
    assert passing(error) is again
