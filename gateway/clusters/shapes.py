"""What the gateway reads of the objects its cluster watches bring: one TypedDict per resource, given to the
watch's decoder (`kubeapi.decode.Narrow`) so that each watch line is decoded into these fields only and the
rest of the object (a pod's image, command, env, volumes, tolerations, managed fields; a node's images and
addresses; an event's source) is skipped by msgspec in C, never made into Python dicts and strings.

Each field below is read by one of: `tracking.kept` (what a followed pod keeps, and so what `pods/status.py`,
the log followers and the garbage collector read), `capacity.sizing`, `capacity.pod_usage` (through
`placement.node_fit.effective_requests`), `capacity.node_state`, and `runtime` (a pod's key and owner, an
event's pod and `_kube_event`), or the watch itself (`metadata.resourceVersion`). A reader of a new field
adds it here: tests/unit/test_watch_shapes.py proves, on any object, that every reader reads the same from
the narrow decode as from the whole object, and fails for a field read but not declared.

Values are `Any` (decoded as they come: a value of an unexpected type reaches the reader as it did before);
nested objects the readers walk are typed, and a line where one is not an object (or a list is not a list)
fails the narrow decode and is decoded whole instead (`Narrow.read`), so readers see exactly what they did.
"""

from __future__ import annotations

from typing import Any, TypedDict

from gateway.clusters.kubeapi.decode import Narrow


class Metadata(TypedDict, total=False):
    name: Any
    namespace: Any
    uid: Any
    resourceVersion: Any
    creationTimestamp: Any
    deletionTimestamp: Any
    labels: Any
    annotations: Any


class Container(TypedDict, total=False):
    name: Any
    resources: Any
    restartPolicy: Any


class PodSpec(TypedDict, total=False):
    nodeName: Any
    containers: list[Container]
    initContainers: list[Container]
    overhead: Any


class PodCondition(TypedDict, total=False):
    type: Any
    status: Any
    reason: Any
    message: Any


class ContainerStatus(TypedDict, total=False):
    name: Any
    state: Any
    lastState: Any


class PodStatus(TypedDict, total=False):
    phase: Any
    reason: Any
    message: Any
    conditions: list[PodCondition]
    containerStatuses: list[ContainerStatus]
    initContainerStatuses: list[ContainerStatus]


class PodFields(TypedDict, total=False):
    metadata: Metadata
    spec: PodSpec
    status: PodStatus


class NodeMetadata(TypedDict, total=False):
    name: Any
    labels: Any
    resourceVersion: Any


class NodeSpec(TypedDict, total=False):
    taints: Any
    unschedulable: Any


class NodeCondition(TypedDict, total=False):
    type: Any
    status: Any


class NodeStatus(TypedDict, total=False):
    allocatable: Any
    capacity: Any
    conditions: list[NodeCondition]


class NodeFields(TypedDict, total=False):
    metadata: NodeMetadata
    spec: NodeSpec
    status: NodeStatus


class EventMetadata(TypedDict, total=False):
    uid: Any
    resourceVersion: Any


class InvolvedObject(TypedDict, total=False):
    kind: Any
    namespace: Any
    name: Any


class EventFields(TypedDict, total=False):
    metadata: EventMetadata
    involvedObject: InvolvedObject
    type: Any
    reason: Any
    message: Any
    count: Any
    lastTimestamp: Any
    eventTime: Any
    firstTimestamp: Any


PODS = Narrow(PodFields)
NODES = Narrow(NodeFields)
EVENTS = Narrow(EventFields)
