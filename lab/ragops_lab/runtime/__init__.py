"""Shared plumbing for the lab programs, one concern per module.

Every program reads its configuration from environment variables the way a container does
(``env``), logs one JSON object per line to stdout, the pod log (``log``), calls the others and
the Kubernetes API over JSON HTTP (``httpclient``, ``kubeapi``), finds Services' pods
(``resolve``), checks its start-up gates (``gates``) and serves JSON over HTTP with the same
health conventions (``server``), so the node agent and the collection can treat all of them alike.
"""
