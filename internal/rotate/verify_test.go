package rotate_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/audit"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/rotate"
)

func patches(fh *fakeHood) int {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	return len(fh.tokens)
}

func onePass(t *testing.T, eng *rotate.Engine, req rotate.Request) rotate.Outcome {
	t.Helper()
	rep, err := eng.Pass(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return rep.Outcomes[0]
}

func TestVerifyFailureIsNotRetriedOnSchedule(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": "bad-" + sentinel, "chat_id": "1"}
	eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: newState(t)})

	o := onePass(t, eng, rotate.Request{Trigger: rotate.TriggerSchedule})
	if o.Result != rotate.ResultFailed || !errors.Is(o.Err, rotate.ErrVerify) || !strings.Contains(o.Error, `effective_status "inactive"`) {
		t.Fatalf("got %s %v, want failed verification naming effective_status", o.Result, o.Err)
	}
	o = onePass(t, eng, rotate.Request{Trigger: rotate.TriggerSchedule})
	if !errors.Is(o.Err, rotate.ErrVerifyFailedBefore) {
		t.Errorf("second scheduled pass: got %s %v, want refused as failed before", o.Result, o.Err)
	}
	if got := patches(fh); got != 1 {
		t.Errorf("PATCHes: got %d, want 1 (the failed settings are not pushed again on schedule)", got)
	}
	if o := onePass(t, eng, rotate.Request{Force: true}); o.Result != rotate.ResultFailed || patches(fh) != 2 {
		t.Errorf("forced pass: got %s with %d PATCHes, want it pushed (and failed) again", o.Result, patches(fh))
	}
}

func TestVerifyWaitsForTestInProgress(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	fh.testing["1000"] = 4 // the preflight read and three read-backs say "testing"
	eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: newState(t)})
	if o := onePass(t, eng, rotate.Request{}); o.Result != rotate.ResultPushed {
		t.Errorf("got %s %v, want pushed once the test finished", o.Result, o.Err)
	}
	fh.testing["1000"] = 1000
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel + "2", "chat_id": "1"}
	if o := onePass(t, eng, rotate.Request{}); !errors.Is(o.Err, rotate.ErrUnverified) || !strings.Contains(o.Error, `still "testing"`) {
		t.Errorf("got %s %v, want a verification timeout", o.Result, o.Err)
	}
	// No verdict is not a failed verification: the next pass pushes again.
	fh.testing["1000"] = 0
	if o := onePass(t, eng, rotate.Request{}); o.Result != rotate.ResultPushed {
		t.Errorf("pass after an unverified push: got %s %v, want pushed", o.Result, o.Err)
	}
}

func TestRollbackPushesLastGoodVersionFromVault(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	cfg := engineConfig(1, func(int) string { return "a" })
	cfg.Integrations[0].OnVerifyFailure = "rollback"
	st := newState(t)
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	al, err := audit.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()

	good := map[string]string{"auth_token": "good-" + sentinel, "chat_id": "1"}
	fv.secrets["secret/a"] = good
	fv.versions["secret/a@5"] = good
	eng := rotate.New(cfg, rotate.Options{Vault: versioned{fv, 5}, Hood: fh, State: st, Audit: al})
	if o := onePass(t, eng, rotate.Request{}); o.Result != rotate.ResultPushed {
		t.Fatalf("version 5: got %s %v, want pushed", o.Result, o.Err)
	}

	fv.secrets["secret/a"] = map[string]string{"auth_token": "bad-" + sentinel, "chat_id": "1"}
	eng = rotate.New(cfg, rotate.Options{Vault: versioned{fv, 6}, Hood: fh, State: st, Audit: al})
	o := onePass(t, eng, rotate.Request{})
	if o.Result != rotate.ResultFailed || !o.RolledBack || !strings.Contains(o.Error, "rolled back to version 5") {
		t.Fatalf("version 6: got %s rolled_back=%v %q, want failed and rolled back to 5", o.Result, o.RolledBack, o.Error)
	}
	fh.mu.Lock()
	final := fh.pushes["1000"]["auth_token"]
	fh.mu.Unlock()
	if final != "good-"+sentinel {
		t.Errorf("after the rollback Hood holds another value than version 5's")
	}
	// The next scheduled pass neither re-pushes the bad version nor the good one.
	before := patches(fh)
	o = onePass(t, eng, rotate.Request{})
	if !errors.Is(o.Err, rotate.ErrVerifyFailedBefore) || patches(fh) != before {
		t.Errorf("after a rollback: got %s %v with %d new PATCHes, want refused with none", o.Result, o.Err, patches(fh)-before)
	}

	b, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"event":"push"`, `"event":"verify"`, `"event":"rollback"`, `"result":"failed"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log: no %s record", want)
		}
	}
	if bytes.Contains(b, []byte(sentinel)) {
		t.Errorf("the audit log contains a secret value")
	}
}

func TestPreflightRefusesWrongProviderAndMissingSettings(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	cfg := engineConfig(2, func(int) string { return "a" })
	fh.providers["1000"] = "mailgun_email"
	fh.schema["1001"] = []string{"auth_token"} // the live schema lacks chat_id
	rep, err := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh, State: newState(t)}).Pass(context.Background(), rotate.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if o := rep.Outcomes[0]; !errors.Is(o.Err, rotate.ErrPreflight) || !errors.Is(o.Err, hood.ErrSchemaMismatch) ||
		!strings.Contains(o.Error, `integration 1000 in Hood is not a telegram integration`) || !strings.Contains(o.Error, "settings of provider mailgun_email") {
		t.Errorf("wrong provider: got %s %q, want a schema mismatch naming mailgun_email", o.Result, o.Error)
	}
	if o := rep.Outcomes[1]; !errors.Is(o.Err, rotate.ErrPreflight) || !strings.Contains(o.Error, `Hood's provider "telegram" has settings auth_token; provider telegram (expected name "telegram") has auth_token, chat_id`) {
		t.Errorf("missing setting: got %s %q, want a schema mismatch naming both lists", o.Result, o.Error)
	}
	if got := patches(fh); got != 0 {
		t.Errorf("PATCHes: got %d, want 0", got)
	}
}
