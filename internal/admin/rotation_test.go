package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/rotation"
)

func TestRotationRun(t *testing.T) {
	until := t1.Add(15 * time.Minute)
	busy := fmt.Errorf("rotation sg: %w: web-2#0a1b2c3d until 2025-03-01T03:01:00Z", rotation.ErrBusy)
	tests := []struct {
		name     string
		target   string
		res      rotation.Result
		err      error
		wantCode int
		wantReq  *rotation.Request // nil: no call
		want     string            // in the body
	}{
		{name: "run waits for grace", target: "/v1/rotations/sg",
			res:      rotation.Result{Name: "sg", Provider: "sendgrid_email", Step: rotation.StepVerified, Since: t1, GraceUntil: &until, KeyID: "key-1"},
			wantCode: 200, wantReq: &rotation.Request{Trigger: "admin", Begin: true},
			want: `"grace_until": "2025-03-01T03:15:03Z"`},
		{name: "dry run", target: "/v1/rotations/sg?dry_run=true",
			res:      rotation.Result{Name: "sg", Provider: "sendgrid_email", Step: rotation.StepDone, DryRun: true, Plan: []string{"check the current credential"}},
			wantCode: 200, wantReq: &rotation.Request{Trigger: "admin", DryRun: true},
			want: `"plan": [`},
		{name: "dry run false is a run", target: "/v1/rotations/sg?dry_run=false",
			res: rotation.Result{Name: "sg", Step: rotation.StepDone}, wantCode: 200, wantReq: &rotation.Request{Trigger: "admin", Begin: true}, want: `"step": "done"`},
		{name: "a failed run is a result", target: "/v1/rotations/sg",
			res:      rotation.Result{Name: "sg", Step: rotation.StepUndone, Error: "undone: mint: refused by sendgrid_email"},
			wantCode: 200, wantReq: &rotation.Request{Trigger: "admin", Begin: true}, want: `"error": "undone: mint: refused by sendgrid_email"`},
		{name: "unknown rotation", target: "/v1/rotations/nope", err: fmt.Errorf("%w %q", rotation.ErrUnknownRotation, "nope"),
			wantCode: 404, wantReq: &rotation.Request{Trigger: "admin", Begin: true}, want: `"error": "unknown rotation \"nope\""`},
		{name: "held by another rotator", target: "/v1/rotations/sg", err: busy,
			wantCode: 409, wantReq: &rotation.Request{Trigger: "admin", Begin: true}, want: "web-2#0a1b2c3d"},
		{name: "could not run", target: "/v1/rotations/sg", err: errors.New("rotator is shutting down"),
			wantCode: 500, wantReq: &rotation.Request{Trigger: "admin", Begin: true}, want: "the rotation could not run; see the daemon's log"},
		{name: "unknown query parameter", target: "/v1/rotations/sg?dryrun=true", wantCode: 400, want: `unknown query parameter \"dryrun\"`},
		{name: "dry run twice", target: "/v1/rotations/sg?dry_run=true&dry_run=true", wantCode: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &fakeService{runRotation: func(_ context.Context, name string, req rotation.Request) (rotation.Result, error) {
				if name != strings.TrimPrefix(strings.Split(tt.target, "?")[0], "/v1/rotations/") {
					t.Errorf("name: got %q", name)
				}
				return tt.res, tt.err
			}}
			s, logs := newServer(t, svc, nil)
			got := serve(t, s.Handler(), call{method: "POST", target: tt.target, auth: bearer(sentinel)})
			if got.code != tt.wantCode {
				t.Errorf("status: got %d, want %d (body %s)", got.code, tt.wantCode, got.body)
			}
			if !strings.Contains(got.body, tt.want) {
				t.Errorf("body: got\n%s\nwant it to hold %s", got.body, tt.want)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q", ct)
			}
			reqs := svc.rotationRequests()
			switch {
			case tt.wantReq == nil && len(reqs) > 0:
				t.Errorf("service called with %+v, want no call", reqs)
			case tt.wantReq != nil && len(reqs) != 1:
				t.Errorf("service calls: got %d, want 1", len(reqs))
			case tt.wantReq != nil:
				r := reqs[0]
				if r.Trigger != tt.wantReq.Trigger || r.Begin != tt.wantReq.Begin || r.DryRun != tt.wantReq.DryRun || r.Caller == "" {
					t.Errorf("request: got %+v, want %+v with the caller", r, *tt.wantReq)
				}
			}
			if tt.wantCode == 500 && !strings.Contains(logs.String(), "rotator is shutting down") {
				t.Errorf("the error is not logged:\n%s", logs)
			}
			if strings.Contains(got.dump()+logs.String(), sentinel) {
				t.Error("the token shows in the answer or the log")
			}
		})
	}
}

func TestRotationRoutesNeedToken(t *testing.T) {
	for _, c := range []call{
		{method: "POST", target: "/v1/rotations/sg"},
		{method: "POST", target: "/v1/rotations/sg", auth: bearer("wrong")},
		{method: "GET", target: "/v1/rotations"},
	} {
		svc := &fakeService{}
		s, _ := newServer(t, svc, nil)
		if got := serve(t, s.Handler(), c); got.code != 401 {
			t.Errorf("%s %s with auth %q: got %d, want 401", c.method, c.target, c.auth, got.code)
		}
		if n := svc.calls.Load(); n != 0 {
			t.Errorf("%s %s without the token reached the service", c.method, c.target)
		}
	}
	s, _ := newServer(t, &fakeService{}, nil)
	for _, c := range []call{
		{method: "GET", target: "/v1/rotations/sg", auth: bearer(sentinel)},
		{method: "POST", target: "/v1/rotations", auth: bearer(sentinel)},
	} {
		if got := serve(t, s.Handler(), c); got.code != 405 {
			t.Errorf("%s %s: got %d, want 405", c.method, c.target, got.code)
		}
	}
}

func TestRotationsList(t *testing.T) {
	done := t1.Add(-time.Hour)
	tests := []struct {
		name     string
		st       []rotation.Status
		err      error
		wantCode int
		want     string
	}{
		{name: "none", wantCode: 200, want: "{\n  \"rotations\": []\n}\n"},
		{name: "one", st: []rotation.Status{{Name: "sg", Provider: "sendgrid_email", Schedule: "0 4 * * 1", Step: rotation.StepDone, Since: t1,
			KeyID: "key-2", Version: 3, Finished: &done}}, wantCode: 200, want: `{
  "rotations": [
    {
      "name": "sg",
      "provider": "sendgrid_email",
      "schedule": "0 4 * * 1",
      "step": "done",
      "since": "2025-03-01T03:00:03Z",
      "key_id": "key-2",
      "version": 3,
      "finished_at": "2025-03-01T02:00:03Z"
    }
  ]
}
`},
		{name: "records unreadable", err: errors.New("vault: permission denied"), wantCode: 500,
			want: "{\n  \"error\": \"cannot read the rotation records; see the daemon's log\"\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, logs := newServer(t, &fakeService{rotations: tt.st, rotErr: tt.err}, nil)
			got := serve(t, s.Handler(), call{method: "GET", target: "/v1/rotations", auth: bearer(sentinel)})
			if got.code != tt.wantCode || got.body != tt.want {
				t.Errorf("got %d\n%s\nwant %d\n%s", got.code, got.body, tt.wantCode, tt.want)
			}
			if tt.err != nil && !strings.Contains(logs.String(), "permission denied") {
				t.Errorf("the error is not logged:\n%s", logs)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(got.body), &v); err != nil {
				t.Errorf("not JSON: %v", err)
			}
		})
	}
}
