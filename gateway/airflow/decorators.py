"""@task.podgate: runs the decorated function in a pod through the gateway, like @task.kubernetes.

The function's source and its arguments (JSON) travel in environment variables; a short bootstrap run with
the image's `python` defines the function, calls it and writes the return value to
/airflow/xcom/return.json, which comes back as the task's XCom. The image needs only Python.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

from airflow.sdk.bases.decorator import DecoratedOperator, TaskDecorator, task_decorator_factory

from gateway.airflow.operators import GatewayPodOperator, PodgateFatalError
from gateway.airflow.pod_builder import env_list

SOURCE_ENV = "__PODGATE_SOURCE"
INPUT_ENV = "__PODGATE_INPUT"
BOOTSTRAP = f"""\
import base64, json, os, sys
source = base64.b64decode(os.environ["{SOURCE_ENV}"]).decode()
payload = json.loads(base64.b64decode(os.environ["{INPUT_ENV}"]))
namespace = {{"__name__": "__podgate_task__"}}
exec(compile(source, "<podgate task>", "exec"), namespace)
value = namespace[sys.argv[1]](*payload["args"], **payload["kwargs"])
os.makedirs("/airflow/xcom", exist_ok=True)
with open("/airflow/xcom/return.json", "w") as f:
    json.dump(value, f)
"""


def encode_call(source: str, args: Sequence[Any], kwargs: dict[str, Any]) -> list[dict[str, str]]:
    """The two environment variables carrying the function and its arguments (JSON, so no pickle)."""
    try:
        payload = json.dumps({"args": list(args), "kwargs": kwargs})
    except TypeError as e:
        raise PodgateFatalError(f"@task.podgate arguments must be JSON-serialisable: {e}") from e
    return [
        {"name": SOURCE_ENV, "value": base64.b64encode(source.encode()).decode()},
        {"name": INPUT_ENV, "value": base64.b64encode(payload.encode()).decode()},
    ]


class _PodgateDecoratedOperator(DecoratedOperator, GatewayPodOperator):
    custom_operator_name = "@task.podgate"
    # cmds and arguments are the bootstrap's.
    template_fields: Sequence[str] = tuple(
        {"op_args", "op_kwargs", *GatewayPodOperator.template_fields} - {"cmds", "arguments"}
    )
    shallow_copy_attrs: Sequence[str] = ("python_callable",)

    def __init__(self, namespace: str | None = None, use_dill: bool = False, **kwargs: Any) -> None:
        name = kwargs.pop("name", f"podgate-{kwargs['python_callable'].__name__}")
        kwargs.setdefault("do_xcom_push", True)
        super().__init__(namespace=namespace, name=name, cmds=["python"], **kwargs)
        self.use_dill = use_dill

    def execute(self, context: Any) -> Any:
        if self.use_dill:
            self.log.warning("use_dill is ignored: @task.podgate passes arguments as JSON (the image needs no dill)")
        call_env = encode_call(self.get_python_source(), list(self.op_args), dict(self.op_kwargs))
        self.env_vars = env_list(self.env_vars) + call_env
        self.cmds = ["python", "-c", BOOTSTRAP]
        self.arguments = [self.python_callable.__name__]
        return super().execute(context)


def podgate_task(
    python_callable: Callable[..., Any] | None = None, multiple_outputs: bool | None = None, **kwargs: Any
) -> TaskDecorator:
    """@task.podgate(image=..., cluster_selector=..., ...): takes GatewayPodOperator's arguments."""
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=_PodgateDecoratedOperator,
        **kwargs,
    )
