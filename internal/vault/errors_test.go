package vault_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/vault"
)

func TestErrorMessage(t *testing.T) {
	cause := errors.New("dial tcp 127.0.0.1:8200: connect: connection refused")
	tests := []struct {
		name string
		err  *vault.Error
		want string
	}{
		{"permission denied", &vault.Error{Op: "read", Mount: "secret", Path: "ocamba/twilio", KVVersion: 2, Kind: vault.KindPermissionDenied},
			"read secret/ocamba/twilio (kv v2): permission denied"},
		{"not found", &vault.Error{Op: "read", Mount: "secret", Path: "ocamba/twilio", KVVersion: 2, Kind: vault.KindNotFound},
			"read secret/ocamba/twilio (kv v2): not found"},
		{"not found, deleted", &vault.Error{Op: "read", Mount: "secret", Path: "a", KVVersion: 2, Kind: vault.KindNotFound, Detail: "current version 3 is deleted"},
			"read secret/a (kv v2): not found: current version 3 is deleted"},
		{"sealed", &vault.Error{Op: "read", Mount: "secret", Path: "ocamba/twilio", KVVersion: 1, Kind: vault.KindSealed},
			"read secret/ocamba/twilio (kv v1): vault is sealed"},
		{"unreachable", &vault.Error{Op: "read", Mount: "secret", Path: "ocamba/twilio", KVVersion: 2, Kind: vault.KindUnreachable,
			Addr: "http://127.0.0.1:8200", Detail: cause.Error(), Err: cause},
			"read secret/ocamba/twilio (kv v2): vault unreachable at http://127.0.0.1:8200: dial tcp 127.0.0.1:8200: connect: connection refused"},
		{"login unauthenticated", &vault.Error{Op: "login", Method: "approle", Mount: "approle", Kind: vault.KindUnauthenticated, Detail: "invalid role or secret ID"},
			"login with approle at auth/approle: unauthenticated: invalid role or secret ID"},
		{"invalid", &vault.Error{Op: "login", Method: "token", Kind: vault.KindInvalid, Detail: "token_file /x is empty"},
			"login with token: token_file /x is empty"},
		{"other", &vault.Error{Op: "read", Mount: "m", Path: "p", KVVersion: 2, Kind: vault.KindOther, Detail: "vault answered HTTP 500"},
			"read m/p (kv v2): vault answered HTTP 500"},
		// As built by other packages' fakes: only the basic fields.
		{"minimal, sentinel cause", &vault.Error{Op: "read", Mount: "secret", Path: "c", Kind: vault.KindPermissionDenied, Err: vault.ErrPermissionDenied},
			"read secret/c: permission denied"},
		{"minimal other with cause", &vault.Error{Op: "read", Mount: "secret", Path: "c", Err: errors.New("boom")},
			"read secret/c: error: boom"},
		{"no op", &vault.Error{Kind: vault.KindSealed}, "vault: vault is sealed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error(): got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorIsAndUnwrap(t *testing.T) {
	sentinels := map[vault.Kind]error{
		vault.KindPermissionDenied: vault.ErrPermissionDenied,
		vault.KindNotFound:         vault.ErrNotFound,
		vault.KindSealed:           vault.ErrSealed,
		vault.KindUnreachable:      vault.ErrUnreachable,
		vault.KindUnauthenticated:  vault.ErrUnauthenticated,
		vault.KindInvalid:          vault.ErrInvalid,
	}
	all := []vault.Kind{vault.KindOther, vault.KindPermissionDenied, vault.KindNotFound, vault.KindSealed,
		vault.KindUnreachable, vault.KindUnauthenticated, vault.KindInvalid}
	cause := errors.New("cause")
	for _, kind := range all {
		t.Run(kind.String(), func(t *testing.T) {
			err := fmt.Errorf("pass: %w", &vault.Error{Op: "read", Kind: kind, Err: cause})
			for other, s := range sentinels {
				if got, want := errors.Is(err, s), other == kind; got != want {
					t.Errorf("errors.Is(%s error, %v): got %v, want %v", kind, s, got, want)
				}
			}
			if !errors.Is(err, cause) {
				t.Error("errors.Is(err, cause): got false, want true (Unwrap)")
			}
			var e *vault.Error
			if !errors.As(err, &e) || e.Kind != kind {
				t.Errorf("errors.As: got %v, want a *vault.Error of kind %s", e, kind)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		kind vault.Kind
		want string
	}{
		{vault.KindOther, "error"},
		{vault.KindPermissionDenied, "permission denied"},
		{vault.KindNotFound, "not found"},
		{vault.KindSealed, "vault is sealed"},
		{vault.KindUnreachable, "vault unreachable"},
		{vault.KindUnauthenticated, "unauthenticated"},
		{vault.KindInvalid, "invalid"},
		{vault.Kind(99), "error"},
	}
	for _, tt := range tests {
		if got := tt.kind.String(); got != tt.want {
			t.Errorf("Kind(%d).String(): got %q, want %q", int(tt.kind), got, tt.want)
		}
	}
}
