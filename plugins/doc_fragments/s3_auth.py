# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # S3 endpoint and credentials; the spec is the "s3" group in
    # plugins/module_utils/argspec.py.
    DOCUMENTATION = r"""
options:
  endpoint_url:
    description:
      - URL of an S3-compatible endpoint (MinIO, SeaweedFS, Ceph). Leave unset for AWS S3.
      - Falls back to E(AWS_ENDPOINT_URL_S3), E(AWS_ENDPOINT_URL) or E(S3_ENDPOINT_URL).
    type: str
    aliases: [s3_url]
  access_key:
    description:
      - Access key id. Falls back to E(AWS_ACCESS_KEY_ID).
      - When no keys and no O(profile) are given, the usual boto3 credential chain applies.
    type: str
    aliases: [aws_access_key_id]
  secret_key:
    description:
      - Secret access key. Falls back to E(AWS_SECRET_ACCESS_KEY). Never returned or logged.
    type: str
    aliases: [aws_secret_access_key]
  session_token:
    description:
      - Session token for temporary credentials. Falls back to E(AWS_SESSION_TOKEN).
    type: str
    aliases: [aws_session_token]
  region:
    description:
      - Region of the bucket. Falls back to E(AWS_REGION) or E(AWS_DEFAULT_REGION).
    type: str
  profile:
    description:
      - Named profile of the AWS shared configuration. Falls back to E(AWS_PROFILE).
    type: str
    aliases: [aws_profile]
  s3_validate_certs:
    description:
      - Whether to verify the S3 endpoint's TLS certificate.
    type: bool
    default: true
  s3_ca_bundle:
    description:
      - Path to a CA bundle used to verify the S3 endpoint. Falls back to E(AWS_CA_BUNDLE).
    type: path
requirements:
  - boto3 >= 1.35.0 (Python library)
"""
