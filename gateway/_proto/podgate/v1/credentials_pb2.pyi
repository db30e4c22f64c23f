import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KubeconfigAccess(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KUBECONFIG_ACCESS_UNSPECIFIED: _ClassVar[KubeconfigAccess]
    KUBECONFIG_ACCESS_VIEW: _ClassVar[KubeconfigAccess]
    KUBECONFIG_ACCESS_EDIT: _ClassVar[KubeconfigAccess]
KUBECONFIG_ACCESS_UNSPECIFIED: KubeconfigAccess
KUBECONFIG_ACCESS_VIEW: KubeconfigAccess
KUBECONFIG_ACCESS_EDIT: KubeconfigAccess

class IssueKubeconfigRequest(_message.Message):
    __slots__ = ("cluster", "namespace", "ttl", "access")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    namespace: str
    ttl: _duration_pb2.Duration
    access: KubeconfigAccess
    def __init__(self, cluster: _Optional[str] = ..., namespace: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., access: _Optional[_Union[KubeconfigAccess, str]] = ...) -> None: ...

class IssueKubeconfigResponse(_message.Message):
    __slots__ = ("kubeconfig", "expire_time", "credential_id", "service_account")
    KUBECONFIG_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    kubeconfig: str
    expire_time: _timestamp_pb2.Timestamp
    credential_id: str
    service_account: str
    def __init__(self, kubeconfig: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., credential_id: _Optional[str] = ..., service_account: _Optional[str] = ...) -> None: ...

class RevokeKubeconfigRequest(_message.Message):
    __slots__ = ("credential_id",)
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    def __init__(self, credential_id: _Optional[str] = ...) -> None: ...

class RevokeKubeconfigResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
