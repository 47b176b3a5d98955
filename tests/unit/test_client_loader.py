"""The container's botocore loader (clients.default_session): botocore's models, read for less."""

import json
import os
from collections import OrderedDict

import botocore.loaders
import botocore.session
import pytest
from botocore.exceptions import UnknownServiceError

from connect_guard.clients import ContainerLoader, default_session


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.mark.parametrize(("service", "type_name"), [("connect", "service-2"), ("iam", "endpoint-rule-set-1")])
def test_a_model_reads_as_botocore_reads_it_in_the_same_order_as_plain_dicts(service, type_name):
    ours = ContainerLoader().load_service_model(service, type_name)
    theirs = botocore.loaders.Loader().load_service_model(service, type_name)
    assert json.dumps(ours) == json.dumps(theirs)  # same content, same key order
    assert type(ours) is dict and all(type(v) is not OrderedDict for v in ours.values())


def test_the_first_clients_do_not_list_every_service_folder(monkeypatch):
    listed: list[str] = []
    original = os.listdir

    def recorded(path="."):
        listed.append(str(path))
        return original(path)

    monkeypatch.setattr(botocore.loaders.os, "listdir", recorded)
    session = default_session("us-east-1")
    for service in ("sns", "dynamodb", "sts", "iam", "connect"):
        session.client(service)
    # Each service's own folders (botocore's and boto3's data), not the ~450 of a full listing.
    assert len(listed) <= 4 * 5, listed
    assert "Publish" in session.client("sns").meta.service_model.operation_names


def test_an_unknown_service_is_still_refused_with_botocore_s_list():
    session = default_session("us-east-1")
    with pytest.raises(UnknownServiceError) as refused:
        session.client("no-such-service")
    assert "connect" in str(refused.value) and "sns" in str(refused.value)
    assert "iam" in session.get_available_services()
    assert list(session.get_available_services()) == botocore.session.get_session().get_available_services()


def test_aws_data_path_is_still_searched_first(monkeypatch, tmp_path):
    model = tmp_path / "sns" / "2010-03-31" / "service-2.json"
    model.parent.mkdir(parents=True)
    real = botocore.loaders.Loader().load_service_model("sns", "service-2")
    model.write_text(json.dumps({**real, "metadata": {**real["metadata"], "serviceId": "SNS custom"}}))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    assert default_session("us-east-1").client("sns").meta.service_model.service_id == "SNS custom"


def test_a_call_the_override_does_not_expect_goes_to_botocores_own_reader(monkeypatch, tmp_path):
    """The runtime's botocore may differ from ours: an unexpected argument or file falls back."""
    from connect_guard.clients import PlainJSONFileLoader

    seen: list[tuple] = []

    def botocores(self, full_path, open_method, *args, **kwargs):
        seen.append((full_path, args, kwargs))
        return {"from": "botocore"}

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "_load_file", botocores)
    broken = tmp_path / "service-2.json"
    broken.write_text("{not json")
    loader = PlainJSONFileLoader()
    assert loader._load_file(str(broken), open, "extra") == {"from": "botocore"}
    assert loader._load_file(str(broken), open) == {"from": "botocore"}
    good = tmp_path / "good.json"
    good.write_text('{"a": 1}')
    assert loader._load_file(str(good), open) == {"a": 1}
    assert [(path, args) for path, args, _ in seen] == [(str(broken), ("extra",)), (str(broken), ())]
