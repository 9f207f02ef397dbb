"""The lab's node agent: kubelet and workload controllers against the Kubernetes API.

It turns Deployments, StatefulSets and Jobs into pods, binds PVCs to local directories and runs
each pod's containers as local processes following the process contract of the lab programs
(see ../programs/README.md). It only uses the ordinary Kubernetes REST API.
"""
