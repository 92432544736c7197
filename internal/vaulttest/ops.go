package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// EnableKV mounts a KV secrets engine of version 1 or 2 at mount and, for
// version 2, waits until the mount accepts writes. A KV engine of the same
// version already there is fine (tests may run more than once, -count).
func (s *Server) EnableKV(ctx context.Context, mount string, version int) error {
	if version != 1 && version != 2 {
		return fmt.Errorf("enable kv at %s: version %d is neither 1 nor 2", mount, version)
	}
	c := s.Client()
	err := c.Sys().MountWithContext(ctx, mount, &api.MountInput{
		Type:    "kv",
		Options: map[string]string{"version": strconv.Itoa(version)},
	})
	if err != nil {
		if v, verr := s.kvVersion(ctx, c, mount); verr == nil && v == version {
			return nil
		}
		return fmt.Errorf("enable kv v%d at %s: %w", version, mount, err)
	}
	if version == 1 {
		return nil
	}
	// A new KV v2 mount upgrades itself in the background for a moment.
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	for {
		_, err := c.Logical().ReadWithContext(ctx, strings.Trim(mount, "/")+"/config")
		if err == nil {
			return nil
		}
		if serr := sleep(ctx, s.done(), 25*time.Millisecond); serr != nil {
			return fmt.Errorf("wait for kv v2 at %s (last: %w): %w", mount, err, serr)
		}
	}
}

// kvVersion returns the KV version of the engine mounted at mount.
func (s *Server) kvVersion(ctx context.Context, c *api.Client, mount string) (int, error) {
	m, err := c.Sys().GetMountWithContext(ctx, strings.Trim(mount, "/"))
	if err != nil {
		return 0, fmt.Errorf("look up mount %s: %w", mount, err)
	}
	if m.Type != "kv" && m.Type != "generic" {
		return 0, fmt.Errorf("mount %s is %q, not kv", mount, m.Type)
	}
	if m.Options["version"] == "2" {
		return 2, nil
	}
	return 1, nil
}

// PutKV writes data at path in the KV engine at mount, v1 or v2 as mounted,
// and returns the new version (0 for KV v1).
func (s *Server) PutKV(ctx context.Context, mount, path string, data map[string]any) (int, error) {
	c := s.Client()
	v, err := s.kvVersion(ctx, c, mount)
	if err != nil {
		return 0, fmt.Errorf("put %s/%s: %w", mount, path, err)
	}
	if v == 1 {
		if err := c.KVv1(mount).Put(ctx, path, data); err != nil {
			return 0, fmt.Errorf("put %s/%s: %w", mount, path, err)
		}
		return 0, nil
	}
	sec, err := c.KVv2(mount).Put(ctx, path, data)
	if err != nil {
		return 0, fmt.Errorf("put %s/%s: %w", mount, path, err)
	}
	if sec == nil || sec.VersionMetadata == nil {
		return 0, fmt.Errorf("put %s/%s: no version in the answer", mount, path)
	}
	return sec.VersionMetadata.Version, nil
}

// DeleteKV deletes the secret at path: for KV v2 a soft delete of its
// current version (the metadata and older versions stay), for KV v1 the
// secret itself.
func (s *Server) DeleteKV(ctx context.Context, mount, path string) error {
	c := s.Client()
	v, err := s.kvVersion(ctx, c, mount)
	if err != nil {
		return fmt.Errorf("delete %s/%s: %w", mount, path, err)
	}
	if v == 1 {
		err = c.KVv1(mount).Delete(ctx, path)
	} else {
		err = c.KVv2(mount).Delete(ctx, path)
	}
	if err != nil {
		return fmt.Errorf("delete %s/%s: %w", mount, path, err)
	}
	return nil
}

// DestroyKV permanently destroys the given versions of a KV v2 secret.
func (s *Server) DestroyKV(ctx context.Context, mount, path string, versions ...int) error {
	if err := s.Client().KVv2(mount).Destroy(ctx, path, versions); err != nil {
		return fmt.Errorf("destroy %s/%s versions %v: %w", mount, path, versions, err)
	}
	return nil
}

// WritePolicy creates or replaces the ACL policy name.
func (s *Server) WritePolicy(ctx context.Context, name, hcl string) error {
	if err := s.Client().Sys().PutPolicyWithContext(ctx, name, hcl); err != nil {
		return fmt.Errorf("write policy %s: %w", name, err)
	}
	return nil
}

// CreateToken creates a token with the given policies (plus default) and
// TTL (0: the server's default) and returns it.
func (s *Server) CreateToken(ctx context.Context, policies []string, ttl time.Duration) (string, error) {
	req := &api.TokenCreateRequest{Policies: policies}
	if ttl > 0 {
		req.TTL = ttl.String()
	}
	return s.CreateTokenWith(ctx, req)
}

// CreateTokenWith creates a token as req asks (policies, TTL, explicit max
// TTL, renewable, period...) and returns it.
func (s *Server) CreateTokenWith(ctx context.Context, req *api.TokenCreateRequest) (string, error) {
	sec, err := s.Client().Auth().Token().CreateWithContext(ctx, req)
	if err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return "", errors.New("create token: no token in the answer")
	}
	return sec.Auth.ClientToken, nil
}

// SetAppRoleTTL sets the TTL and the max TTL of the tokens that logins to
// the AppRole role at mount get (0: the mount's default), for tests of
// token renewal and expiry. The role's other settings stay.
func (s *Server) SetAppRoleTTL(ctx context.Context, mount, role string, ttl, maxTTL time.Duration) error {
	path := "auth/" + strings.Trim(mount, "/") + "/role/" + role
	if _, err := s.Client().Logical().WriteWithContext(ctx, path, map[string]any{
		"token_ttl":     int(ttl / time.Second),
		"token_max_ttl": int(maxTTL / time.Second),
	}); err != nil {
		return fmt.Errorf("set token ttl of approle role %s: %w", role, err)
	}
	return nil
}

// RevokeToken revokes token and its children.
func (s *Server) RevokeToken(ctx context.Context, token string) error {
	if err := s.Client().Auth().Token().RevokeTreeWithContext(ctx, token); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// RevokeAllTokens revokes every token but the root token, such as those that
// a client got from an AppRole login, and returns how many it revoked.
func (s *Server) RevokeAllTokens(ctx context.Context) (int, error) {
	c := s.Client()
	self, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return 0, fmt.Errorf("look up the root token: %w", err)
	}
	rootAccessor, _ := self.Data["accessor"].(string)
	list, err := c.Logical().ListWithContext(ctx, "auth/token/accessors")
	if err != nil {
		return 0, fmt.Errorf("list token accessors: %w", err)
	}
	if list == nil {
		return 0, nil
	}
	keys, _ := list.Data["keys"].([]any)
	n := 0
	for _, k := range keys {
		acc, ok := k.(string)
		if !ok || acc == rootAccessor {
			continue
		}
		if err := c.Auth().Token().RevokeAccessorWithContext(ctx, acc); err != nil {
			return n, fmt.Errorf("revoke token accessor: %w", err)
		}
		n++
	}
	return n, nil
}

// EnableAuth enables the auth method of type typ at mount. The same type
// already there is fine.
func (s *Server) EnableAuth(ctx context.Context, mount, typ string) error {
	mount = strings.Trim(mount, "/")
	c := s.Client()
	err := c.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &api.EnableAuthOptions{Type: typ})
	if err != nil {
		if auths, lerr := c.Sys().ListAuthWithContext(ctx); lerr == nil {
			if a, ok := auths[mount+"/"]; ok && a.Type == typ {
				return nil
			}
		}
		return fmt.Errorf("enable %s auth at %s: %w", typ, mount, err)
	}
	return nil
}

// EnableAppRole enables the AppRole auth method at mount unless it is
// already there, creates (or updates) role with the given token policies,
// and returns the role's id and a new secret id.
func (s *Server) EnableAppRole(ctx context.Context, mount, role string, policies []string) (roleID, secretID string, err error) {
	mount = strings.Trim(mount, "/")
	c := s.Client()
	if err := s.EnableAuth(ctx, mount, "approle"); err != nil {
		return "", "", err
	}
	rolePath := "auth/" + mount + "/role/" + role
	if _, err := c.Logical().WriteWithContext(ctx, rolePath, map[string]any{
		"token_policies": strings.Join(policies, ","),
	}); err != nil {
		return "", "", fmt.Errorf("write approle role %s: %w", role, err)
	}
	sec, err := c.Logical().ReadWithContext(ctx, rolePath+"/role-id")
	if err != nil {
		return "", "", fmt.Errorf("read role id of %s: %w", role, err)
	}
	if sec != nil {
		roleID, _ = sec.Data["role_id"].(string)
	}
	if roleID == "" {
		return "", "", fmt.Errorf("read role id of %s: no role_id in the answer", role)
	}
	sec, err = c.Logical().WriteWithContext(ctx, rolePath+"/secret-id", nil)
	if err != nil {
		return "", "", fmt.Errorf("create secret id for %s: %w", role, err)
	}
	if sec != nil {
		secretID, _ = sec.Data["secret_id"].(string)
	}
	if secretID == "" {
		return "", "", fmt.Errorf("create secret id for %s: no secret_id in the answer", role)
	}
	return roleID, secretID, nil
}

// Seal seals the server. Its in-memory data stays, for Unseal.
func (s *Server) Seal(ctx context.Context) error {
	if err := s.Client().Sys().SealWithContext(ctx); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	return nil
}

// Unseal unseals the server with its unseal key (printed by a dev server,
// kept from the initialisation of a persistent one) and waits until it is
// healthy (active) again.
func (s *Server) Unseal(ctx context.Context) error {
	st, err := s.Client().Sys().UnsealWithContext(ctx, s.unsealKey)
	if err != nil {
		return fmt.Errorf("unseal: %w", err)
	}
	if st.Sealed {
		return errors.New("unseal: still sealed after the unseal key")
	}
	if err := s.waitHealthy(ctx); err != nil {
		return fmt.Errorf("unseal: %w", err)
	}
	return nil
}

// EnableFileAudit enables a file audit device that appends one JSON line
// per request and one per response to path (values HMAC'd, as Vault does).
// Each call adds a new device.
func (s *Server) EnableFileAudit(ctx context.Context, path string) error {
	id, err := randomToken()
	if err != nil {
		return err
	}
	device := "file-" + id[len(id)-8:]
	err = s.Client().Sys().EnableAuditWithOptionsWithContext(ctx, device, &api.EnableAuditOptions{
		Type:    "file",
		Options: map[string]string{"file_path": path},
	})
	if err != nil {
		return fmt.Errorf("enable file audit to %s: %w", path, err)
	}
	return nil
}

// ErrNoNamespaces is returned by CreateNamespace on HashiCorp Vault, whose
// namespaces are an Enterprise feature; tests skip on it.
var ErrNoNamespaces = errors.New("this server has no namespaces (HashiCorp Vault: an Enterprise feature; OpenBao has them)")

// CreateNamespace creates the namespace name (OpenBao has namespaces),
// unless it exists. Use Client().WithNamespace(name) to act inside it.
func (s *Server) CreateNamespace(ctx context.Context, name string) error {
	if IsVault(s.bin) {
		return fmt.Errorf("create namespace %s: %w", name, ErrNoNamespaces)
	}
	path := "sys/namespaces/" + strings.Trim(name, "/")
	c := s.Client()
	if _, err := c.Logical().WriteWithContext(ctx, path, nil); err != nil {
		if sec, rerr := c.Logical().ReadWithContext(ctx, path); rerr == nil && sec != nil {
			return nil
		}
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}
