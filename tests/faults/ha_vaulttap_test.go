package faults_test

// The tap in front of each HA process's Vault fault proxy: it records
// every request (the holder a lease record write claims, the answer's
// status and version) and lets a test drop one or kill its sender.

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/testkit"
)

type vaultReq struct {
	proc, method, path string
	gen                int
	cat                string // what was asked: "record read", "record write", "secret read", ...
	lease              string // integration name, for a record request
	holder             string // record write: the holder it claims ("" releases)
	body               string // record write: the body (HMACs and names)
	at, done           time.Time
	status             int  // 0: no answer
	version            int  // record write answered 200: the version written
	blocked            bool // never forwarded (blockLeaseWrites)
	fate               string
}

// vaultAction is what a vaultTap hook makes of a request.
type vaultAction int

const (
	vaultPass     vaultAction = iota
	vaultKillDrop             // kill the sender; the request never reaches Vault
)

type vaultTap struct {
	c   *haCluster
	p   *haProc
	url string

	mu               sync.Mutex
	reqs             []*vaultReq
	inflight         int
	blockLeaseWrites bool
}

func startVaultTap(t *testing.T, c *haCluster, p *haProc) *vaultTap {
	t.Helper()
	v := &vaultTap{c: c, p: p}
	v.url = serve(t, &http.Server{Handler: v, ReadHeaderTimeout: 10 * time.Second})
	return v
}

func isWrite(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

// category names a Vault request; lease is the integration of a record.
func (c *haCluster) category(method, path string) (cat, lease string) {
	rw := "read"
	if isWrite(method) {
		rw = "write"
	} else if method != http.MethodGet {
		rw = strings.ToLower(method)
	}
	data := "/v1/" + haMount + "/data/" + c.leasePath + "/"
	switch {
	case strings.HasPrefix(path, data+"_meta/"):
		return "hmac key " + rw, ""
	case strings.HasPrefix(path, data):
		return "record " + rw, strings.TrimPrefix(path, data)
	case strings.HasPrefix(path, "/v1/"+haMount+"/"):
		return "lease mount other " + rw, ""
	case strings.HasPrefix(path, "/v1/secret/data/"):
		return "secret " + rw, ""
	case strings.HasPrefix(path, "/v1/secret/metadata/"):
		return "secret metadata " + rw, ""
	case strings.HasPrefix(path, "/v1/auth/"):
		return "auth", ""
	}
	return "other " + rw, ""
}

func (v *vaultTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	rq := &vaultReq{proc: v.p.label, gen: v.p.curGen(), method: r.Method, path: r.URL.Path, at: time.Now()}
	rq.cat, rq.lease = v.c.category(r.Method, r.URL.Path)
	leaseWrite := rq.lease != "" && isWrite(r.Method)
	if leaseWrite {
		var b struct {
			Data struct {
				Holder string `json:"holder"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &b)
		rq.holder, rq.body = b.Data.Holder, string(body)
	}
	v.mu.Lock()
	v.reqs = append(v.reqs, rq)
	v.inflight++
	block := v.blockLeaseWrites && leaseWrite
	rq.blocked = block
	snap := *rq
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.inflight--
		rq.done = time.Now()
		v.mu.Unlock()
	}()
	v.c.mu.Lock()
	hook := v.c.vaultHook
	v.c.mu.Unlock()
	act := vaultPass
	if hook != nil {
		act = hook(v.p, snap)
	}
	switch act {
	case vaultKillDrop:
		v.p.kill()
		v.mu.Lock()
		rq.fate = "dropped"
		v.mu.Unlock()
		return
	}
	if block {
		<-r.Context().Done() // a black hole: the write never reaches Vault
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if !leaseWrite {
		sw := &testkit.StatusWriter{ResponseWriter: w}
		v.p.fp.ServeHTTP(sw, r)
		v.mu.Lock()
		rq.status = sw.Status
		v.mu.Unlock()
		return
	}
	// A record write: its answer is held until the landed hook had its
	// say (it may kill the sender, which then never learns that its write
	// landed).
	rec := httptest.NewRecorder()
	v.p.fp.ServeHTTP(rec, r)
	version := 0
	if rec.Code == http.StatusOK {
		var a struct {
			Data struct {
				Version int `json:"version"`
			} `json:"data"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &a) == nil {
			version = a.Data.Version
		}
	}
	v.mu.Lock()
	rq.status, rq.version = rec.Code, version
	snap = *rq
	v.mu.Unlock()
	v.c.mu.Lock()
	landed := v.c.landedHook
	v.c.mu.Unlock()
	if version > 0 && landed != nil && landed(v.p, snap) {
		v.p.kill()
		v.mu.Lock()
		rq.fate = "landed, answer withheld: the sender was killed"
		v.mu.Unlock()
		return
	}
	maps.Copy(w.Header(), rec.Header())
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (v *vaultTap) setBlockLeaseWrites(b bool) {
	v.mu.Lock()
	v.blockLeaseWrites = b
	v.mu.Unlock()
}

// all returns every request recorded, in order of arrival.
func (v *vaultTap) all() []vaultReq { return copyLog(&v.mu, &v.reqs) }

// idleFor reports whether no request is in flight and none ended within d.
func (v *vaultTap) idleFor(d time.Duration) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.inflight > 0 {
		return false
	}
	for _, r := range v.reqs {
		if time.Since(r.done) < d {
			return false
		}
	}
	return true
}

// counts counts the requests by category.
func (v *vaultTap) counts() map[string]int {
	out := map[string]int{}
	for _, r := range v.all() {
		switch {
		case r.cat == "record write" && r.status == http.StatusOK:
			out["record write ok"]++
		case r.cat == "record write" && r.status == http.StatusBadRequest:
			out["record write refused (check-and-set)"]++
		case r.cat == "record write":
			out["record write failed"]++
		default:
			out[r.cat]++
		}
	}
	return out
}
