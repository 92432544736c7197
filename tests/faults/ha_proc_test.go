package faults_test

// One process of the HA cluster: its instances (each a `rotator run`), the
// signals the tests send it, and its admin API.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

type haProc struct {
	c      *haCluster
	label  string
	idx    int
	fp     *faultProxy
	tap    *vaultTap
	hp     *hoodProxy
	config string

	mu       sync.Mutex
	d        *daemon
	gen      int // instance: incremented by each start
	killedAt time.Time
}

// start starts a new instance of the process (the last one must have ended).
func (p *haProc) start() *daemon {
	p.c.t.Helper()
	p.mu.Lock()
	p.gen++
	p.mu.Unlock()
	d := p.c.f.startDaemon(p.config)
	p.mu.Lock()
	p.d = d
	p.mu.Unlock()
	p.c.mu.Lock()
	p.c.daemons = append(p.c.daemons, d)
	p.c.mu.Unlock()
	return d
}

func (p *haProc) daemon() *daemon {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.d
}

func (p *haProc) curGen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// kill sends SIGKILL to the running instance (from any goroutine).
func (p *haProc) kill() time.Time {
	d := p.daemon()
	at := time.Now()
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	p.mu.Lock()
	p.killedAt = at
	p.mu.Unlock()
	return at
}

// signal sends sig to the running instance (SIGSTOP, SIGCONT).
func (p *haProc) signal(sig syscall.Signal) {
	_ = p.daemon().cmd.Process.Signal(sig)
}

// stop sends SIGSTOP and waits (up to 2s) until every thread of the
// process is stopped (/proc/<pid>/task/*/stat state T).
func (p *haProc) stop() {
	d := p.daemon()
	_ = d.cmd.Process.Signal(syscall.SIGSTOP)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", d.cmd.Process.Pid))
		stopped := len(tasks) > 0
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			// The state follows the command name in parentheses.
			i := bytes.LastIndexByte(b, ')')
			if err != nil || i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				stopped = false
				break
			}
		}
		if stopped {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *haProc) killTime() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killedAt
}

// status returns the running instance's /v1/status by integration name.
func (p *haProc) status() map[string]integrationStatus {
	p.c.t.Helper()
	return p.daemon().status()
}

// haOutcome is one outcome of a POST /v1/rotate answer.
type haOutcome struct {
	Name     string   `json:"name"`
	Result   string   `json:"result"`
	Error    string   `json:"error"`
	Reason   string   `json:"reason"`
	Warnings []string `json:"warnings"`
}

// forceRotate POSTs /v1/rotate (from any goroutine: no test calls).
// wrote, when not nil, is called once the request is on the wire.
func (p *haProc) forceRotate(client *http.Client, wrote func()) (int, []byte, error) {
	ctx := context.Background()
	if wrote != nil {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote() }})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.daemon().addr+"/v1/rotate", nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer admin-"+sentinel)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// vaultMetricLines returns the rotator_vault_requests_total samples.
func (p *haProc) vaultMetricLines() []string {
	return p.daemon().samples("rotator_vault_requests_total")
}
