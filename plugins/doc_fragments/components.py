# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The stack's components; the spec is the "components" group in
    # plugins/module_utils/argspec.py.
    DOCUMENTATION = r"""
options:
  components:
    description:
      - The stack's components as the inventory lists them (for example the C(ragops_components) host
        variable), each a Deployment or StatefulSet in O(namespace) with the components it needs first.
      - Pods are found through the workload's own C(spec.selector).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Name of the Deployment or StatefulSet, and of the component in O(components[].depends_on).
        type: str
        required: true
      kind:
        description:
          - Kind of the workload.
        type: str
        choices: [Deployment, StatefulSet]
        default: Deployment
      depends_on:
        description:
          - Components that must be Ready before this one starts.
        type: list
        elements: str
        default: []
      replicas:
        description:
          - Replicas to start the component with when it is found scaled to zero and the collection did
            not record the count it had (see C(ragops.io/scaled-down-from) in C(docs/bootstrap.md)).
            Defaults to 1.
        type: int
      wait_timeout:
        description:
          - Seconds to wait for this component to become Ready, instead of the C(wait_timeout) of modules that wait.
        type: int
  dependency_env:
    description:
      - Name of a container environment variable that lists, comma separated, the Services a component
        waits for at start-up (for example V(WAIT_FOR)). Its values, read from each workload's pod
        template, are added to O(components[].depends_on) as observed dependencies, so that a cycle
        introduced by configuration outside the inventory is found too.
      - A Service name is matched to the component of the same name; C(retriever.ns.svc:8080) counts as
        C(retriever). Names of no component are ignored.
    type: str
"""
