package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"
)

// ReadDoc reads the current version of the KV v2 secret at mount/path and
// decodes its data (a JSON object) into out with encoding/json. Mount and
// path are taken without surrounding slashes; out must be a non-nil pointer.
//
// found is false, with a nil error and out left as it was, when there is no
// secret (version 0) or its current version is deleted or destroyed
// (version is then that current version, so that a check-and-set write,
// WriteDoc with cas = version, can follow).
//
// Logins and a 403 are handled as by ReadKV: it logs in first when the
// client is not authenticated, and logs in again once and repeats the read
// when Vault no longer accepts the token. Each request is passed to
// Options.Observe as OpRead; a document that is not found is ResultOK (it
// is an expected answer: HA records do not exist until first written).
//
// Errors are *Error with Op "read" and KVVersion 2 (or Op "login" when the
// first login fails): KindPermissionDenied, KindSealed, KindUnreachable,
// KindUnauthenticated, KindOther (such as a mount that is not a KV v2
// engine), KindInvalid for a bad argument, and KindInvalid when the data
// does not decode into out: version and found (true) are then returned
// with the error, so that a caller may replace the document with WriteDoc.
// No error holds the document's content.
func (c *Client) ReadDoc(ctx context.Context, mount, path string, out any) (version int, found bool, err error) {
	mount, path = strings.Trim(mount, "/"), strings.Trim(path, "/")
	base := Error{Op: OpRead, Mount: mount, Path: path, KVVersion: 2, Addr: c.addr}
	if err := checkMountPath(base); err != nil {
		return 0, false, err
	}
	if v := reflect.ValueOf(out); v.Kind() != reflect.Pointer || v.IsNil() {
		return 0, false, invalidError(base, fmt.Sprintf("cannot decode into %T: want a non-nil pointer", out))
	}

	var s *api.Secret
	err = c.withLogin(ctx, base, func() error {
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		sec, err := c.api.Logical().ReadWithContext(rctx, mount+"/data/"+path)
		if err != nil {
			c.observe(OpRead, ResultError)
			return classify(base, err)
		}
		// vault/api answers a 404 with nil (no secret), or with the
		// secret when the body holds data: KV v2 answers a deleted or
		// destroyed current version with 404 and {"data": null,
		// "metadata": {...}}.
		// A document not written yet is an expected answer here (the
		// first read of an HA record), not a failed request.
		c.observe(OpRead, ResultOK)
		s = sec
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	if s == nil {
		return 0, false, nil
	}
	md, ok := s.Data["metadata"].(map[string]any)
	if !ok {
		return 0, false, notKVv2(base, s, "a secret without KV v2 metadata")
	}
	version, ok = intOf(md["version"])
	if !ok {
		return 0, false, notKVv2(base, s, "KV v2 metadata without a version")
	}
	raw := s.Data["data"]
	if raw == nil {
		// Deleted or destroyed (or, which Vault does not do, current
		// without data): a check-and-set write at version follows.
		return version, false, nil
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return version, true, invalidError(base, fmt.Sprintf("version %d: data is a JSON %s, not an object", version, jsonKind(raw)))
	}
	b, err := json.Marshal(obj) // vault/api decodes numbers as json.Number: kept exact
	if err != nil {
		return version, true, invalidError(base, fmt.Sprintf("version %d: data does not encode again as JSON", version))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return version, true, invalidError(base, fmt.Sprintf("version %d: %s", version, decodeDetail(err, out)))
	}
	return version, true, nil
}

// WriteDoc writes in (marshalled with encoding/json, to a JSON object) as a
// new version of the KV v2 secret at mount/path with check-and-set: cas is
// the version the caller expects to be current (0: the secret must not
// exist yet; after a ReadDoc that found nothing, the version it returned).
// It returns the version written. Mount and path are taken without
// surrounding slashes.
//
// Logins and a 403 are handled as by ReadKV (a denied write has written
// nothing, so it is repeated after a new login). Each request is passed to
// Options.Observe as OpWrite.
//
// A check-and-set mismatch (Vault answers HTTP 400 "check-and-set parameter
// did not match the current version") is an *Error of KindConflict:
// errors.Is(err, ErrConflict). Other errors are *Error with Op "write" and
// KVVersion 2 (or Op "login" when the first login fails):
// KindPermissionDenied, KindNotFound (no such mount, for a token that may
// write anywhere), KindSealed, KindUnreachable (the write may or may not
// have been made), KindUnauthenticated, KindOther, and KindInvalid, before
// any request, for a bad argument or an in that does not encode as a JSON
// object. No error holds the document's content.
func (c *Client) WriteDoc(ctx context.Context, mount, path string, in any, cas int) (version int, err error) {
	mount, path = strings.Trim(mount, "/"), strings.Trim(path, "/")
	base := Error{Op: OpWrite, Mount: mount, Path: path, KVVersion: 2, Addr: c.addr}
	if err := checkMountPath(base); err != nil {
		return 0, err
	}
	if cas < 0 {
		return 0, invalidError(base, fmt.Sprintf("check-and-set version %d is negative", cas))
	}
	data, err := json.Marshal(in)
	if err != nil {
		return 0, invalidError(base, encodeDetail(err, in))
	}
	if len(data) == 0 || data[0] != '{' {
		return 0, invalidError(base, fmt.Sprintf("a %T does not encode as a JSON object", in))
	}
	body := map[string]any{
		"options": map[string]any{"cas": cas},
		"data":    json.RawMessage(data),
	}

	err = c.withLogin(ctx, base, func() error {
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		s, err := c.api.Logical().WriteWithContext(rctx, mount+"/data/"+path, body)
		if err != nil {
			c.observe(OpWrite, ResultError)
			e := classify(base, err)
			if e.Kind == KindConflict {
				e.Detail = conflictDetail(cas)
			}
			return e
		}
		c.observe(OpWrite, ResultOK)
		v, ok := 0, false
		if s != nil {
			v, ok = intOf(s.Data["version"])
		}
		if !ok {
			return notKVv2(base, s, "the write without a version")
		}
		version = v
		return nil
	})
	if err != nil {
		return 0, err
	}
	return version, nil
}

// CurrentVersion reads the KV v2 metadata of the secret at mount/path (GET
// <mount>/metadata/<path>, no secret data) and returns its current_version:
// the version of its latest write, even when that version is deleted or
// destroyed (0 for metadata written without any version). Mount and path
// are taken without surrounding slashes.
//
// Logins and a 403 are handled as by ReadKV. Each request is passed to
// Options.Observe as OpMetadata. Errors are *Error with Op "metadata" and
// KVVersion 2 (or Op "login" when the first login fails): KindNotFound when
// there is no metadata (no secret), KindPermissionDenied (the policy must
// allow read on <mount>/metadata/<path>), KindSealed, KindUnreachable,
// KindUnauthenticated, KindOther, KindInvalid for a bad argument.
func (c *Client) CurrentVersion(ctx context.Context, mount, path string) (int, error) {
	mount, path = strings.Trim(mount, "/"), strings.Trim(path, "/")
	base := Error{Op: OpMetadata, Mount: mount, Path: path, KVVersion: 2, Addr: c.addr}
	if err := checkMountPath(base); err != nil {
		return 0, err
	}
	var version int
	err := c.withLogin(ctx, base, func() error {
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		s, err := c.api.Logical().ReadWithContext(rctx, mount+"/metadata/"+path)
		if err != nil {
			c.observe(OpMetadata, ResultError)
			return classify(base, err)
		}
		if s == nil || len(s.Data) == 0 {
			c.observe(OpMetadata, ResultError)
			e := base
			e.Kind, e.Err = KindNotFound, api.ErrSecretNotFound
			if s != nil && len(s.Warnings) > 0 {
				e.Detail = "vault warns: " + strings.Join(s.Warnings, "; ")
			}
			return &e
		}
		c.observe(OpMetadata, ResultOK)
		v, ok := intOf(s.Data["current_version"])
		if !ok {
			return notKVv2(base, s, "metadata without current_version")
		}
		version = v
		return nil
	})
	if err != nil {
		return 0, err
	}
	return version, nil
}

// withLogin makes the request of once, for an operation described by base,
// the way ReadKV does: it logs in first when the client is not
// authenticated, then calls once (one request, passed to Options.Observe by
// once, which returns *Error built from base). When that request is denied
// (KindPermissionDenied, HTTP 403), it tells a policy denial from a token
// that Vault no longer accepts by looking the token up: a refused token
// makes the client unauthenticated, and withLogin logs in again once and
// calls once again once. A valid token means a policy denial, returned as
// it is. A login made meanwhile by another goroutine changes the token:
// then once is just called again.
func (c *Client) withLogin(ctx context.Context, base Error, once func() error) error {
	if err := c.ensureLogin(ctx); err != nil {
		return err
	}
	seen, _ := c.generation()
	err := once()
	var e *Error
	if err == nil || !errors.As(err, &e) || e.Kind != KindPermissionDenied {
		return err
	}

	// 403: a policy denial, or a token that is no longer valid? A login
	// since the request (by another goroutine) changes the token: then
	// just ask again with the new one. The token and the generation
	// change together (see loginLocked), so a look-up that saw the new
	// token is followed by a generation that shows it.
	if c.changedSince(seen) {
		return once()
	}
	refused := c.tokenRefused(ctx)
	if c.changedSince(seen) {
		return once()
	}
	if !refused {
		return err
	}
	c.markInvalid(seen)
	c.log.WarnContext(ctx, "vault token no longer valid, logging in again",
		"method", c.method, "operation", base.Op, "mount", base.Mount, "path", base.Path)
	if lerr := c.relogin(ctx, seen); lerr != nil {
		out := base
		out.Kind, out.Err = KindUnauthenticated, lerr
		var le *Error
		if errors.As(lerr, &le) && le.Kind != KindInvalid && le.Kind != KindOther {
			out.Kind = le.Kind
		}
		out.Detail = "token no longer valid, and login again failed: " + lerr.Error()
		return &out
	}
	return once()
}

// checkMountPath reports an empty mount or path of base (KindInvalid).
func checkMountPath(base Error) error {
	switch {
	case base.Mount == "":
		return invalidError(base, "mount is empty")
	case base.Path == "":
		return invalidError(base, "path is empty")
	}
	return nil
}

// invalidError is an *Error of base, KindInvalid, with detail.
func invalidError(base Error, detail string) *Error {
	e := base
	e.Kind, e.Detail, e.Err = KindInvalid, detail, ErrInvalid
	return &e
}

// notKVv2 is the error of an answer of Vault that is not what KV v2
// answers ("vault answered <what>"), such as the answer of a KV v1 mount.
// Vault's warnings, if any, are added; the answer's data is not.
func notKVv2(base Error, s *api.Secret, what string) *Error {
	e := base
	e.Kind, e.Err = KindOther, errors.New("unexpected answer")
	e.Detail = fmt.Sprintf("vault answered %s (is %s a KV v2 engine?)", what, base.Mount)
	if s != nil && len(s.Warnings) > 0 {
		e.Detail += "; vault warns: " + strings.Join(s.Warnings, "; ")
	}
	return &e
}

// conflictDetail says what a check-and-set write at cas expected.
func conflictDetail(cas int) string {
	if cas == 0 {
		return "expected no secret (check-and-set version 0), but it exists"
	}
	return fmt.Sprintf("expected version %d is not the current version", cas)
}

// intOf returns a version number that vault/api decoded (json.Number), or
// false when v is not a whole number.
func intOf(v any) (int, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.Atoi(n.String())
		return i, err == nil
	case float64:
		if n == float64(int(n)) {
			return int(n), true
		}
	case int:
		return n, true
	}
	return 0, false
}

// decodeDetail says why data did not decode into out, from the Go types and
// JSON kinds only: an UnmarshalJSON's error may quote the value (time.Time
// does: `parsing time "<value>" as ...`), and the field path of a json type
// error may name map keys of the document.
func decodeDetail(err error, out any) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Type != nil {
		kind, _, _ := strings.Cut(te.Value, " ") // older Go: "number 42"; keep "number"
		return fmt.Sprintf("data does not decode into %T: a JSON %s does not fit a %s", out, kind, te.Type)
	}
	return fmt.Sprintf("data does not decode into %T", out)
}

// encodeDetail says why in did not encode as JSON, without quoting values
// (json.UnsupportedValueError and a MarshalJSON's own error may).
func encodeDetail(err error, in any) string {
	var ue *json.UnsupportedTypeError
	if errors.As(err, &ue) {
		return fmt.Sprintf("a %T does not encode as JSON: it holds a %s", in, ue.Type)
	}
	var ve *json.UnsupportedValueError
	if errors.As(err, &ve) {
		return fmt.Sprintf("a %T does not encode as JSON: it holds an unsupported value (NaN, an infinity or a cycle)", in)
	}
	return fmt.Sprintf("a %T does not encode as JSON", in)
}
