"""Recovery drills against the lab, one module per runbook scenario.

``shard_recovery`` (Scenario A, with its variants), ``provider_outage`` (Scenario B) and
``bootstrap`` (Scenario C) each start the lab, break it the way the scenario describes, run the
collection's playbook and report the recovery; ``support`` holds what they share.  The lab's own
infrastructure (control plane, node agent, S3, the stack's programs) lives outside this package.
"""
