"""One conformance table for the two deliberate implementations of Kubernetes' rules.

The gateway's `placement/` and the simulator's `sim/` each implement quantities, label selectors,
toleration matching and node fit, independently, so that each checks the other. These modules hold the
inputs and Kubernetes' answers (quantities.py, selectors.py, taints.py, node_fit.py), each row commented
with the Kubernetes rule it follows; implementations.py adapts both sides to one small interface;
test_conformance.py runs every row against both, and test_mirrors_agree.py compares them on generated
inputs (hypothesis). A new rule goes into the table first, then into both implementations.
"""
