# Vault (or OpenBao) policy for rotator with ha.mode: vault and watch mode: what
# those two need IN ADDITION to rotator-policy.hcl, and nothing else. Write it
# with
#   vault policy write rotator-ha deploy/vault/rotator-ha-policy.hcl
# and attach both policies to the role rotator logs in with
# (token_policies=rotator,rotator-ha; docs/operations.md, "Running several
# rotators (ha.mode vault)"). Without ha and watch, leave it out.
#
# ha.mode: vault keeps one record per integration, with its lease, at
# <ha.mount>/<ha.path>/<integration name>, and the HMAC key that all rotators
# share at <ha.mount>/<ha.path>/_meta/hmac-key (docs/ha.md). On KV version 2
# (the only kind ha.mount may be) they are served under <mount>/data/<path>.
# rotator reads them, creates them (check-and-set 0) and writes new versions
# (check-and-set on the version it read): "create", "read" and "update" on
# <mount>/data/<ha.path>/*. Nothing else: it never lists the records, never
# deletes a version (KV v2 keeps max_versions of them, 10 by default) and never
# touches their metadata; the "*" matches the integration names and
# "_meta/hmac-key", and nothing outside <ha.path>/.
#
# watch.interval > 0 polls, every interval, the KV v2 metadata (only its
# current_version; no secret data) of each distinct KV v2 source path:
# "read" on <mount>/metadata/<source path>. The Hood token is not watched, and
# KV v1 sources cannot be. Keep one block per source of integrations[], as in
# rotator-policy.hcl: add one when you add an integration, and no wildcards.
#
# These are the paths of deploy/kubernetes/configmap.yaml (ha.mount secret,
# ha.path rotator/leases, watch on).

# ha: the records and the shared HMAC key.
path "secret/data/rotator/leases/*" {
  capabilities = ["create", "read", "update"]
}

# watch: one block per KV v2 integrations[].source.
path "secret/metadata/ocamba/twilio-main" {
  capabilities = ["read"]
}

path "secret/metadata/ocamba/sendgrid" {
  capabilities = ["read"]
}
