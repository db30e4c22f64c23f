"""Placement: pure logic choosing a cluster for a pod request, with a reason for every verdict."""
