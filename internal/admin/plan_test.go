package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/admin"
	"github.com/ocamba-rotator/rotator/internal/rotate"
)

func TestPlanRequest(t *testing.T) {
	plan := func(only ...string) *rotate.Request {
		return &rotate.Request{Trigger: rotate.TriggerAdmin, DryRun: true, Only: only}
	}
	tests := []struct {
		name     string
		method   string
		target   string
		wantCode int
		wantReq  *rotate.Request // nil: Service.Rotate is not called
		wantBody string          // in the answer, when not ""
	}{
		{"all", "GET", "/v1/plan", 200, plan(), ""},
		{"one", "GET", "/v1/plan?only=twilio-main", 200, plan("twilio-main"), ""},
		{"comma list", "GET", "/v1/plan?only=a,b", 200, plan("a", "b"), ""},
		{"repeated", "GET", "/v1/plan?only=a&only=b", 200, plan("a", "b"), ""},
		{"spaces and empty names", "GET", "/v1/plan?only=a,,%20b%20", 200, plan("a", "b"), ""},
		{"unknown name", "GET", "/v1/plan?only=a,nope", 404, plan("a", "nope"), "nope"},
		{"only empty", "GET", "/v1/plan?only=", 400, nil, "only names no integration"},
		{"only commas", "GET", "/v1/plan?only=,,", 400, nil, "only names no integration"},
		{"dry_run parameter", "GET", "/v1/plan?dry_run=false", 400, nil, `unknown query parameter \"dry_run\" (the plan takes only=NAME[,NAME...])`},
		{"force parameter", "GET", "/v1/plan?force=true", 400, nil, `unknown query parameter \"force\"`},
		{"malformed query", "GET", "/v1/plan?only=%zz", 400, nil, "malformed query string"},
		{"POST", "POST", "/v1/plan", 405, nil, "method POST not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &fakeService{}
			svc.rotate = func(_ context.Context, req rotate.Request) (rotate.Report, error) {
				for _, n := range req.Only {
					if n == "nope" {
						return rotate.Report{}, fmt.Errorf("%w: %q", rotate.ErrUnknownIntegration, []string{n})
					}
				}
				return sampleReport(req), nil
			}
			s, _ := newServer(t, svc, nil)
			got := serve(t, s.Handler(), call{method: tt.method, target: tt.target, auth: bearer(sentinel)})
			if got.code != tt.wantCode {
				t.Fatalf("status: got %d, want %d (body %q)", got.code, tt.wantCode, got.body)
			}
			if !strings.Contains(got.body, tt.wantBody) {
				t.Errorf("body: got %q, want it to contain %q", got.body, tt.wantBody)
			}
			reqs := svc.requests()
			if tt.wantReq == nil {
				if len(reqs) != 0 {
					t.Fatalf("Service.Rotate: got %d calls, want none", len(reqs))
				}
				return
			}
			if len(reqs) != 1 {
				t.Fatalf("Service.Rotate: got %d calls, want 1", len(reqs))
			}
			want := *tt.wantReq
			want.Caller = "192.0.2.1:1234" // httptest's RemoteAddr
			if !reflect.DeepEqual(reqs[0], want) {
				t.Errorf("request: got %+v, want %+v", reqs[0], want)
			}
			if tt.wantCode != 200 {
				return
			}
			var rep rotate.Report
			if err := json.Unmarshal([]byte(got.body), &rep); err != nil {
				t.Fatalf("body: got %q, want a report: %v", got.body, err)
			}
			if !rep.DryRun {
				t.Errorf("report: got dry_run false, want true")
			}
		})
	}
}

func TestPlanNeedsToken(t *testing.T) {
	svc := &fakeService{}
	s, _ := newServer(t, svc, nil)
	for _, auth := range []string{"", bearer("wrong")} {
		if got := serve(t, s.Handler(), call{method: "GET", target: "/v1/plan", auth: auth}); got.code != 401 {
			t.Errorf("GET /v1/plan with Authorization %q: got %d, want 401", auth, got.code)
		}
	}
	if n := svc.calls.Load(); n != 0 {
		t.Errorf("Service.Rotate without the token: got %d calls, want 0", n)
	}
}

// The answer of a pass that outlasts the write timeout still reaches its
// caller, for POST /v1/rotate and GET /v1/plan alike.
func TestPassAnswerOutlivesWriteTimeout(t *testing.T) {
	svc := &fakeService{}
	svc.rotate = func(ctx context.Context, req rotate.Request) (rotate.Report, error) {
		select { // longer than the write timeout below
		case <-time.After(600 * time.Millisecond):
		case <-ctx.Done():
			return rotate.Report{}, ctx.Err()
		}
		return sampleReport(req), nil
	}
	s, _ := newServer(t, svc, func(o *admin.Options) { o.WriteTimeout = 200 * time.Millisecond })
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	for _, c := range []struct{ method, path string }{{"POST", "/v1/rotate"}, {"GET", "/v1/plan"}} {
		code, body, err := do(newClient(), s, c.method, c.path, bearer(sentinel))
		if err != nil || code != 200 || !strings.Contains(body, `"outcomes"`) {
			t.Errorf("%s %s longer than the write timeout: got %d %v %q, want 200 with the report", c.method, c.path, code, err, body)
		}
	}
}
