# Vault (or OpenBao) policy for rotator: read-only, on exactly the secrets it
# uses, nothing else. Write it with
#   vault policy write rotator deploy/vault/rotator-policy.hcl
# and attach it to the AppRole or Kubernetes role rotator logs in with
# (docs/operations.md, "Vault set-up").
#
# KV version 2 (the default kv_version) serves a secret's versions under
# <mount>/data/<path>; rotator reads the latest one on every pass and, for
# on_verify_failure: rollback, an older version of the same path
# (?version=N): both need only "read" on the data path. It never lists,
# writes, deletes or reads metadata. For a KV version 1 mount the path has no
# "data/": path "<mount>/<path>".
#
# Keep one block per integration source (and the Hood token): add a block
# when you add an integration to the configuration, and no wildcards.

# The Hood API token (hood.token.vault), read at every pass.
path "secret/data/rotator/hood" {
  capabilities = ["read"]
}

# One block per integrations[].source.
path "secret/data/ocamba/twilio-main" {
  capabilities = ["read"]
}

path "secret/data/ocamba/sendgrid" {
  capabilities = ["read"]
}

# Token upkeep: rotator looks its token up and renews it while renewable.
# The built-in "default" policy grants these too; they are repeated here so
# that the role also works with token_no_default_policy=true.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

# Rotations at the provider (rotations[], docs/rotation.md) need more than
# this read-only policy: uncomment and adapt these blocks in a policy of
# their own (e.g. rotator-rotation) only if the configuration has rotations.
# These are the paths of config.example.yaml.
#
# # The rotated secrets: read the versions, write new ones (the secret
# # exists when a run starts: "update", no "create").
# path "secret/data/ocamba/sendgrid" {
#   capabilities = ["read", "update"]
# }
#
# path "secret/data/ocamba/twilio-main" {
#   capabilities = ["read", "update"]
# }
#
# # The managing credential of the SendGrid rotation, read at each run.
# path "secret/data/rotator/sendgrid-admin" {
#   capabilities = ["read"]
# }
#
# # The rotations' step records and leases (rotation_records).
# path "secret/data/rotator/rotations/*" {
#   capabilities = ["create", "read", "update"]
# }
