"""Container runtimes of the simulated kubelet: `process` runs real processes, `virtual` runs none.

- `config.py`   the cluster file's `sim.runtime` block (default commands, missing images, back-offs, ...)
- `spec.py`     pod -> what to run: argv, env (fieldRef/secretKeyRef/configMapKeyRef), mounts, volume files
- `process.py`  real processes in mount/UTS/PID namespaces with an overlay root (`launcher.py` inside),
                memory cgroups (`cgroups.py`), exec through nsenter (`exec.py`)
- `process_pod.py`  one pod's life on a `process` node; `probes.py` its readiness/liveness probes
- `virtual.py`  one pod's life on a `virtual` node, driven by `sim.podgate.io/*` annotations
- `base.py`, `services.py`  the types and the protocol shared with the kubelet (`gateway/sim/kubelet.py`)
"""
