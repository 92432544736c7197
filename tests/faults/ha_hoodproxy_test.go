package faults_test

// The proxy in front of Hood, one per HA process: it records which process
// sent which request, when and with which settings, and lets a test hold,
// drop or delay one.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/testkit"
)

type hoodAction int

const (
	hoodForward     hoodAction = iota
	hoodDrop                   // never forwarded: held until the client goes away
	hoodKillForward            // kill the sender, then forward the request: Hood carries it out
	hoodHold                   // hold the request until releaseHeld, then forward it (whether or not the sender waits)
)

type hoodReq struct {
	proc      string
	gen       int
	method    string
	id        string
	settings  map[string]string // PATCH: the settings sent (plain: never print)
	arrived   time.Time
	finished  time.Time
	forwarded bool
	status    int    // Hood's answer; 0 when not forwarded
	fate      string // "forwarded", "dropped", "lost" (client gone during the delay)
}

func (r hoodReq) accepted() bool { return r.forwarded && r.status == http.StatusNoContent }

type hoodProxy struct {
	c   *haCluster
	p   *haProc
	url string

	mu   sync.Mutex
	reqs []*hoodReq
}

func startHoodProxy(t *testing.T, c *haCluster, p *haProc) *hoodProxy {
	t.Helper()
	h := &hoodProxy{c: c, p: p}
	h.url = serve(t, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second})
	return h
}

func (h *hoodProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	rq := &hoodReq{proc: h.p.label, gen: h.p.curGen(), method: r.Method, arrived: time.Now()}
	if id, ok := strings.CutPrefix(r.URL.Path, "/v1/hood/integrations/"); ok {
		rq.id = id
	}
	if r.Method == http.MethodPatch {
		var b struct {
			Settings map[string]any `json:"settings"`
		}
		_ = json.Unmarshal(body, &b)
		rq.settings = settingStrings(b.Settings)
	}
	h.mu.Lock()
	h.reqs = append(h.reqs, rq)
	snap := *rq
	h.mu.Unlock()

	h.c.mu.Lock()
	hook, delay, held := h.c.hoodHook, h.c.hoodDelay, h.c.held
	h.c.mu.Unlock()
	act := hoodForward
	if hook != nil {
		act = hook(h.p, snap)
	}
	if act == hoodDrop {
		h.mu.Lock()
		rq.fate = "dropped"
		h.mu.Unlock()
		<-r.Context().Done()
		return
	}
	if act == hoodKillForward {
		h.p.kill()
		r = r.WithContext(context.WithoutCancel(r.Context()))
	}
	if act == hoodHold {
		<-held
		r = r.WithContext(context.WithoutCancel(r.Context()))
	}
	if r.Method == http.MethodPatch && delay > 0 {
		time.Sleep(rand.N(delay + 1))
		if r.Context().Err() != nil && rand.N(2) == 0 {
			// The sender died while its PATCH was on its way: half the
			// time the request is lost with the connection.
			h.mu.Lock()
			rq.fate = "lost"
			h.mu.Unlock()
			return
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	sw := &testkit.StatusWriter{ResponseWriter: w}
	h.c.f.hood.Handler().ServeHTTP(sw, r)
	h.mu.Lock()
	rq.forwarded, rq.status, rq.finished, rq.fate = true, sw.Status, time.Now(), "forwarded"
	h.mu.Unlock()
}

// all returns every request recorded, in order of arrival.
func (h *hoodProxy) all() []hoodReq { return copyLog(&h.mu, &h.reqs) }
