#!/usr/bin/python
# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: local_record
short_description: Write one of the run's records (a report, a document) to a file on the controller
version_added: 0.1.0
description:
  - Writes a text (O(content)) or a document (O(document), as indented JSON with sorted keys) to O(path)
    on the controller, creating its folders, the way the scenario roles keep their evidence and reports
    next to the run.
  - The file is replaced whole (written beside it, then renamed over it), so a reader never sees half
    of it, and only when its content or mode differs; a re-run recording the same thing changes nothing.
  - Runs in the task's own controller process (an action plugin); unlike M(ansible.builtin.copy) with
    M(ansible.builtin.file), no module process is started, which keeps the scenarios' path to safe
    mode short. It always writes on the controller, whatever the host's connection.
author:
  - ragops.recovery maintainers (@ragops)
options:
  path:
    description: The file to write, on the controller. Its folders are created as needed.
    type: path
    required: true
  content:
    description:
      - The text to write (UTF-8). One of O(content) and O(document) is required.
    type: str
  document:
    description:
      - A document (mappings, lists, text, numbers, booleans, nulls) written as JSON indented by four
        spaces, keys sorted, as the filter C(to_nice_json) writes it.
    type: raw
  mode:
    description: Permissions of the file, as quoted octal text.
    type: raw
    default: "0640"
  dir_mode:
    description: Permissions of the folders created, as quoted octal text. Existing folders are left as they are.
    type: raw
    default: "0750"
  force:
    description:
      - V(false) keeps a file that exists as it is, whatever it holds (for example the postmortem entry a
        finished recovery wrote, on a re-run).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: Says whether the file would change; nothing is written.
  diff_mode:
    support: full
    details: The text before and after (a text over 256 KiB is shown by its size).
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation
        indicates no change.
    support: full
    details: A second run with the same content and mode reports no change.
  action:
    support: full
    details: Runs on the controller; no module is sent to the host.
  async:
    support: none
  bypass_host_loop:
    support: none
  platform:
    support: full
    platforms: posix
    details: The controller's file system.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
seealso:
  - module: ragops.recovery.evidence_collect
"""

EXAMPLES = r"""
- name: Save the evidence gathered before the switch
  ragops.recovery.local_record:
    path: "{{ report_dir }}/evidence.json"
    document:
      generator: "{{ generator_state }}"
      primary: "{{ checked.providers.primary }}"

- name: Write the report from the role's template
  ragops.recovery.local_record:
    path: "{{ report_dir }}/outage.md"
    content: "{{ lookup('ansible.builtin.template', 'outage.md.j2') }}"
"""

RETURN = r"""
path:
  description: The file written (an absolute path).
  returned: success
  type: str
  sample: /runner/ragops-reports/INC-1042/evidence.json
size:
  description: Its size in bytes.
  returned: success
  type: int
  sample: 2481
sha256:
  description: The SHA-256 of its content.
  returned: success
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
"""
