package hoodtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

func TestStatusFaults(t *testing.T) {
	tests := []struct {
		name           string
		fault          hoodtest.Fault
		calls          []call
		want           []int
		wantRetryAfter string
		wantFault      string
		wantNoMessage  bool
	}{
		{
			name:           "503 with Retry-After, once",
			fault:          hoodtest.Fault{Status: 503, RetryAfter: "7"},
			calls:          []call{patch("1161", `{"settings":{"auth_token":"x"}}`), patch("1161", `{"settings":{"auth_token":"x"}}`)},
			want:           []int{503, 204},
			wantRetryAfter: "7",
			wantFault:      "status_503",
		},
		{
			name:           "429 twice",
			fault:          hoodtest.Fault{Status: 429, RetryAfter: "2", Times: 2},
			calls:          []call{get("/v1/hood/integrations/1161"), get("/v1/hood/integrations/1161"), get("/v1/hood/integrations/1161")},
			want:           []int{429, 429, 200},
			wantRetryAfter: "2",
			wantFault:      "status_429",
		},
		{
			name:          "500 without message",
			fault:         hoodtest.Fault{Status: 500, Name: "boom"},
			calls:         []call{get("/v1/hood/providers")},
			want:          []int{500},
			wantFault:     "boom",
			wantNoMessage: true,
		},
		{
			name:      "401 for a valid token",
			fault:     hoodtest.Fault{Status: 401, Method: "patch"},
			calls:     []call{get("/v1/hood/integrations/1161"), patch("1161", `{"settings":{}}`), patch("1161", `{"settings":{}}`)},
			want:      []int{200, 401, 204},
			wantFault: "status_401",
		},
		{
			name:      "404 for one id only",
			fault:     hoodtest.Fault{Status: 404, ID: "1162", Message: "Gone."},
			calls:     []call{get("/v1/hood/integrations/1161"), get("/v1/hood/integrations/1162"), get("/v1/hood/integrations/1162")},
			want:      []int{200, 404, 200},
			wantFault: "status_404",
		},
		{
			name:      "until cleared",
			fault:     hoodtest.Fault{Status: 502, Times: -1},
			calls:     []call{get("/v1/hood/integrations/1161"), get("/v1/hood/integrations/1161"), get("/v1/hood/integrations/1161")},
			want:      []int{502, 502, 502},
			wantFault: "status_502",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, hoodtest.Options{})
			s.Inject(tt.fault)
			for i, c := range tt.calls {
				a := c.must(t, s)
				if a.status != tt.want[i] {
					t.Fatalf("call %d: got %d, want %d (body %s)", i, a.status, tt.want[i], a.body)
				}
				if a.status < 400 {
					continue
				}
				e := checkError(t, a, tt.want[i], tt.fault.Message)
				if tt.wantNoMessage && e.Message != "" {
					t.Errorf("message: got %q, want absent", e.Message)
				}
				if got := a.header.Get("Retry-After"); got != tt.wantRetryAfter {
					t.Errorf("Retry-After: got %q, want %q", got, tt.wantRetryAfter)
				}
				if got := s.Requests()[i].Fault; got != tt.wantFault {
					t.Errorf("Request.Fault: got %q, want %q", got, tt.wantFault)
				}
			}
			if got := s.Throttled(); got != 0 {
				t.Errorf("Throttled: got %d, want 0 (injected 429s are not throttling)", got)
			}
		})
	}
}

func TestFaultOrderAndClear(t *testing.T) {
	s := start(t, hoodtest.Options{})
	s.Inject(hoodtest.Fault{Method: http.MethodPatch, Status: 500})
	s.Inject(hoodtest.Fault{Status: 503})
	s.Inject(hoodtest.Fault{Status: 504})
	steps := []struct {
		c    call
		want int
	}{
		{get("/v1/hood/integrations/1161"), 503}, // the PATCH fault does not match a GET
		{patch("1161", `{"settings":{}}`), 500},
		{get("/v1/hood/integrations/1161"), 504},
		{get("/v1/hood/integrations/1161"), 200},
	}
	for i, st := range steps {
		if a := st.c.must(t, s); a.status != st.want {
			t.Errorf("step %d: got %d, want %d", i, a.status, st.want)
		}
	}
	s.Inject(hoodtest.Fault{Status: 500, Times: 3})
	s.ClearFaults()
	if a := get("/v1/hood/integrations/1161").must(t, s); a.status != http.StatusOK {
		t.Errorf("after ClearFaults: got %d, want 200", a.status)
	}
}

func TestHangFault(t *testing.T) {
	s := start(t, hoodtest.Options{})
	s.Inject(hoodtest.Fault{Method: http.MethodPatch, Hang: true})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := patch("1161", `{"settings":{"auth_token":"x"}}`).do(ctx, newClient(t), s.URL())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PATCH: got error %v, want the client's deadline", err)
	}
	if got := s.Requests()[0].Fault; got != "hang" {
		t.Errorf("Request.Fault: got %q, want hang", got)
	}
	if in, _ := s.Integration("1161"); in.Patches != 0 || in.Settings["auth_token"] != "old-twilio-token" {
		t.Errorf("integration: got %+v, want unchanged", in)
	}
	// The server still answers.
	if a := get("/v1/hood/integrations/1161").must(t, s); a.status != http.StatusOK {
		t.Errorf("next request: got %d, want 200", a.status)
	}
}

func TestHangReleasedByShutdown(t *testing.T) {
	s, err := hoodtest.Start(hoodtest.Options{Tokens: []string{token}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddIntegration("1161", "twilio_sms", nil); err != nil {
		t.Fatal(err)
	}
	s.Inject(hoodtest.Fault{Hang: true})
	done := make(chan error, 1)
	go func() {
		_, err := get("/v1/hood/integrations/1161").do(context.Background(), &http.Client{Transport: &http.Transport{}}, s.URL())
		done <- err
	}()
	// Wait until the request is in (it has been recorded) before shutting down.
	for s.Count("") == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown: got %v, want nil", err)
	}
	if err := <-done; err == nil {
		t.Errorf("hanging request: got an answer, want a client error")
	}
}

func TestResetFault(t *testing.T) {
	s := start(t, hoodtest.Options{})
	s.Inject(hoodtest.Fault{Reset: true, ID: "1161"})
	_, err := patch("1161", `{"settings":{"auth_token":"x"}}`).do(t.Context(), newClient(t), s.URL())
	if err == nil {
		t.Fatalf("PATCH: got an answer, want a client error")
	}
	r := s.Requests()[0]
	if r.Fault != "reset" || r.Status != 0 {
		t.Errorf("recorded: got fault %q status %d, want reset 0", r.Fault, r.Status)
	}
	if in, _ := s.Integration("1161"); in.Patches != 0 {
		t.Errorf("Patches: got %d, want 0", in.Patches)
	}
	if a := patch("1161", `{"settings":{"auth_token":"x"}}`).must(t, s); a.status != http.StatusNoContent {
		t.Errorf("next PATCH: got %d, want 204", a.status)
	}
}

func TestDelayFault(t *testing.T) {
	const delay = 50 * time.Millisecond
	tests := []struct {
		name  string
		fault hoodtest.Fault
		want  int
	}{
		{"then pass through", hoodtest.Fault{Delay: delay}, http.StatusNoContent},
		{"then a status", hoodtest.Fault{Delay: delay, Status: 503}, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, hoodtest.Options{})
			s.Inject(tt.fault)
			began := time.Now()
			a := patch("1161", `{"settings":{"auth_token":"x"}}`).must(t, s)
			// A lower bound only: the answer cannot come before the delay.
			if took := time.Since(began); took < delay {
				t.Errorf("answer after %s, want at least %s", took, delay)
			}
			if a.status != tt.want {
				t.Errorf("status: got %d, want %d", a.status, tt.want)
			}
		})
	}

	t.Run("client gives up first", func(t *testing.T) {
		s := start(t, hoodtest.Options{})
		s.Inject(hoodtest.Fault{Delay: time.Hour})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if _, err := get("/v1/hood/integrations/1161").do(ctx, newClient(t), s.URL()); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("GET: got %v, want the client's deadline", err)
		}
	})
}

func TestVerifyStatusFault(t *testing.T) {
	s := start(t, hoodtest.Options{})
	s.Inject(hoodtest.Fault{ID: "1161", VerifyStatus: "inactive"})
	effective := func() string {
		var obj struct {
			EffectiveStatus string `json:"effective_status"`
		}
		a := get("/v1/hood/integrations/1161").must(t, s)
		if err := json.Unmarshal(a.body, &obj); err != nil {
			t.Fatal(err)
		}
		return obj.EffectiveStatus
	}
	if got := effective(); got != "active" {
		t.Errorf("before the PATCH (a GET does not consume the fault): got %q, want active", got)
	}
	if a := patch("1161", `{"settings":{"auth_token":"x"}}`).must(t, s); a.status != http.StatusNoContent {
		t.Fatalf("PATCH: got %d, want 204", a.status)
	}
	if got := effective(); got != "inactive" {
		t.Errorf("after the PATCH: got %q, want inactive", got)
	}
	in, _ := s.Integration("1161")
	if in.Patches != 1 || in.Settings["auth_token"] != "x" {
		t.Errorf("integration: got %+v, want the PATCH applied", in)
	}
	if got := s.Requests()[1].Fault; got != "verify_inactive" {
		t.Errorf("Request.Fault: got %q, want verify_inactive", got)
	}
	if a := patch("1161", `{"settings":{"auth_token":"y"}}`).must(t, s); a.status != http.StatusNoContent {
		t.Fatalf("second PATCH: got %d, want 204", a.status)
	}
	if got := effective(); got != "active" {
		t.Errorf("after the fault is used up: got %q, want active", got)
	}
}

func TestAnswerLostFault(t *testing.T) {
	tests := []struct {
		name       string
		fault      hoodtest.Fault
		body       string
		wantErr    bool // the client gets no answer
		wantStatus int
		wantFault  string
		wantStored bool
	}{
		{"reset after the change landed", hoodtest.Fault{AnswerLost: true}, `{"settings":{"auth_token":"x"}}`, true, 0, "answer_lost", true},
		{"500 after the change landed", hoodtest.Fault{AnswerLost: true, Status: 500}, `{"settings":{"auth_token":"x"}}`, false, 500, "answer_lost_500", true},
		{"a refused PATCH is answered as usual", hoodtest.Fault{AnswerLost: true}, `{"settings":`, false, 400, "answer_lost", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, hoodtest.Options{})
			s.Inject(tt.fault)
			if _, err := get("/v1/hood/integrations/1161").do(t.Context(), newClient(t), s.URL()); err != nil {
				t.Fatalf("GET: %v", err)
			}
			a, err := patch("1161", tt.body).do(t.Context(), newClient(t), s.URL())
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("PATCH error: got %v, want error %v", err, tt.wantErr)
			}
			if err == nil && a.status != tt.wantStatus {
				t.Errorf("PATCH status: got %d, want %d", a.status, tt.wantStatus)
			}
			in, _ := s.Integration("1161")
			if stored := in.Settings["auth_token"] == "x"; stored != tt.wantStored {
				t.Errorf("setting stored: got %v, want %v (integration %+v)", stored, tt.wantStored, in)
			}
			reqs := s.Requests()
			if got := reqs[len(reqs)-1]; got.Fault != tt.wantFault || got.Status != tt.wantStatus {
				t.Errorf("recorded: got fault %q status %d, want %q %d", got.Fault, got.Status, tt.wantFault, tt.wantStatus)
			}
			if reqs[0].Fault != "" {
				t.Errorf("the GET took the PATCH-only fault %q", reqs[0].Fault)
			}
		})
	}
}
