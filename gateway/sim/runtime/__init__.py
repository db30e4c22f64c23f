"""Container runtimes of the simulated kubelet: `process` runs real processes, `virtual` runs none."""
