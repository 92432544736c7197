package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

// KV is one secret read from a KV v1 or v2 engine.
type KV struct {
	// Mount and Path name the secret, without surrounding slashes.
	Mount, Path string
	// KVVersion is the engine's version, 1 or 2.
	KVVersion int
	// Version is the KV v2 version read (the current one); 0 for KV v1.
	Version int
	// Created is when that KV v2 version was written (the read's
	// metadata.created_time); zero for KV v1, which keeps no such time.
	Created time.Time
	// Data holds the secret's string values by key.
	Data map[string]secret.Value
	// NonString maps each key whose value is not a string to the JSON kind
	// of that value: "number", "boolean", "object", "array" or "null".
	// Those values are not kept.
	NonString map[string]string
}

// ReadKV reads the current version of the secret at path in the KV engine
// mounted at mount, of version kvVersion (1 or 2; 0 means 2). Mount and path
// are taken without surrounding slashes.
//
// It logs in first when the client is not authenticated (so a daemon whose
// first login failed recovers by itself). When Vault answers 403, ReadKV
// tells a policy denial from a token that is no longer valid (expired or
// revoked) by looking the token up: a token that Vault refuses makes the
// client unauthenticated, and ReadKV logs in again once (for every method:
// approle and kubernetes log in afresh, token re-reads token_file or
// $VAULT_TOKEN) and repeats the read once. A valid token means a policy
// denial: KindPermissionDenied, without a new login.
//
// Errors are *Error with Op "read" (or "login" when the first login fails):
// KindNotFound when there is no secret, or its current KV v2 version is
// deleted or destroyed (Detail says which), KindPermissionDenied,
// KindSealed, KindUnreachable, KindUnauthenticated, KindInvalid for a bad
// argument.
func (c *Client) ReadKV(ctx context.Context, mount, path string, kvVersion int) (*KV, error) {
	return c.read(ctx, mount, path, kvVersion, 0)
}

// ReadKVVersion reads one given version of a KV v2 secret (for a rollback
// to the last version known to work). Errors are as ReadKV's; a version that
// was deleted or destroyed is KindNotFound.
func (c *Client) ReadKVVersion(ctx context.Context, mount, path string, version int) (*KV, error) {
	if version < 1 {
		return nil, &Error{Op: OpRead, Mount: mount, Path: path, KVVersion: 2, Addr: c.addr,
			Kind: KindInvalid, Detail: fmt.Sprintf("version %d is not a KV v2 version", version), Err: ErrInvalid}
	}
	return c.read(ctx, mount, path, 2, version)
}

// read is ReadKV and ReadKVVersion (at > 0: that version).
func (c *Client) read(ctx context.Context, mount, path string, kvVersion, at int) (*KV, error) {
	mount, path = strings.Trim(mount, "/"), strings.Trim(path, "/")
	if kvVersion == 0 {
		kvVersion = config.DefaultKVVersion
	}
	base := Error{Op: OpRead, Mount: mount, Path: path, KVVersion: kvVersion, AtVersion: at, Addr: c.addr}
	invalid := func(detail string) error {
		e := base
		e.Kind, e.Detail, e.Err = KindInvalid, detail, ErrInvalid
		return &e
	}
	switch {
	case mount == "":
		return nil, invalid("mount is empty")
	case path == "":
		return nil, invalid("path is empty")
	case kvVersion != 1 && kvVersion != 2:
		e := base
		e.KVVersion = 0
		e.Kind, e.Detail, e.Err = KindInvalid, fmt.Sprintf("kv version %d is neither 1 nor 2", kvVersion), ErrInvalid
		return nil, &e
	}

	var kv *KV
	err := c.withLogin(ctx, base, func() error {
		var err error
		kv, err = c.readOnce(ctx, base)
		return err
	})
	if err != nil {
		return nil, err
	}
	return kv, nil
}

// tokenRefused reports whether Vault refuses the client's token itself (its
// look-up is denied), as opposed to a policy denying one path.
func (c *Client) tokenRefused(ctx context.Context) bool {
	_, err := c.lookupSelf(ctx, c.api)
	var re *api.ResponseError
	return errors.As(err, &re) && (re.StatusCode == 403 || re.StatusCode == 401)
}

// readOnce makes one KV read request.
func (c *Client) readOnce(ctx context.Context, base Error) (*KV, error) {
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var (
		s   *api.KVSecret
		err error
	)
	switch {
	case base.KVVersion == 2 && base.AtVersion > 0:
		s, err = c.api.KVv2(base.Mount).GetVersion(rctx, base.Path, base.AtVersion)
	case base.KVVersion == 2:
		s, err = c.api.KVv2(base.Mount).Get(rctx, base.Path)
	default:
		s, err = c.api.KVv1(base.Mount).Get(rctx, base.Path)
	}
	if err == nil && s == nil {
		err = api.ErrSecretNotFound
	}
	if err != nil {
		c.observe(OpRead, ResultError)
		return nil, classify(base, err)
	}
	if s.Data == nil {
		c.observe(OpRead, ResultError)
		e := base
		e.Kind, e.Err = KindNotFound, api.ErrSecretNotFound
		e.Detail = missingDataDetail(s)
		return nil, &e
	}
	c.observe(OpRead, ResultOK)

	kv := &KV{
		Mount:     base.Mount,
		Path:      base.Path,
		KVVersion: base.KVVersion,
		Data:      make(map[string]secret.Value, len(s.Data)),
		NonString: map[string]string{},
	}
	if s.VersionMetadata != nil {
		kv.Version = s.VersionMetadata.Version
		kv.Created = s.VersionMetadata.CreatedTime
	}
	for k, v := range s.Data {
		if str, ok := v.(string); ok {
			kv.Data[k] = secret.New(str)
			continue
		}
		kv.NonString[k] = jsonKind(v)
	}
	return kv, nil
}

// missingDataDetail says why a secret that Vault answered has no data.
func missingDataDetail(s *api.KVSecret) string {
	if md := s.VersionMetadata; md != nil {
		switch {
		case md.Destroyed:
			return fmt.Sprintf("current version %d is destroyed", md.Version)
		case !md.DeletionTime.IsZero():
			return fmt.Sprintf("current version %d is deleted", md.Version)
		default:
			return fmt.Sprintf("current version %d has no data", md.Version)
		}
	}
	if s.Raw != nil && len(s.Raw.Warnings) > 0 {
		// Such as reading a KV v2 mount as KV v1.
		return "vault warns: " + strings.Join(s.Raw.Warnings, "; ")
	}
	return ""
}

// jsonKind names the JSON kind of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Pointer:
		if reflect.ValueOf(v).IsNil() {
			return "null"
		}
	}
	return "unknown"
}
