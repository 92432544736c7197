package faults_test

// The lease records of the HA tests: their versions, read back from the
// lease mount, attributed to the process that wrote each, and the checks
// of the PATCHes and takeovers against that history.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/ocamba-rotator/rotator/internal/state"
)

// leaseVersion is one KV v2 version of a lease record.
//
// OpenBao gives a version's created_time to the second only, too coarse to
// order the writes against the PATCHes; written is when the write was
// made: when the writer's request reached its Vault tap (writer is then the
// process) for a write whose answer the tap saw, else the time the writer
// put in the record (the later of record.updated and expires - lease_ttl:
// a Fence moves only expires, a release or a note only updated).
type leaseVersion struct {
	version int
	created time.Time // Vault's created_time (to the second)
	written time.Time
	writer  string // the writing process's label; "" when the tap saw no answer
	holder  string
	expires time.Time
	rec     state.Record
	raw     string // the version's data as JSON (HMACs and names only)
}

// label is the identity part of a holder ("proc-a#3f9a2c10": "proc-a").
func label(holder string) string {
	l, _, _ := strings.Cut(holder, "#")
	return l
}

func parseLease(s *api.KVSecret) (leaseVersion, error) {
	var l leaseVersion
	if s == nil || s.Data == nil {
		return l, errors.New("no data")
	}
	if s.VersionMetadata != nil {
		l.version, l.created = s.VersionMetadata.Version, s.VersionMetadata.CreatedTime
	}
	raw, _ := json.Marshal(s.Data)
	l.raw = string(raw)
	l.holder, _ = s.Data["holder"].(string)
	if e, _ := s.Data["expires"].(string); e != "" {
		t, err := time.Parse(time.RFC3339Nano, e)
		if err != nil {
			return l, fmt.Errorf("expires %q: %w", e, err)
		}
		l.expires = t
	}
	var recJSON []byte
	switch r := s.Data["record"].(type) {
	case string:
		recJSON = []byte(r)
	case nil:
	default:
		recJSON, _ = json.Marshal(r)
	}
	if len(recJSON) > 0 {
		if err := json.Unmarshal(recJSON, &l.rec); err != nil {
			return l, fmt.Errorf("record: %w", err)
		}
	}
	return l, nil
}

func (c *haCluster) recordPath(name string) string { return c.leasePath + "/" + name }

// lease reads the current version of an integration's record.
func (c *haCluster) lease(name string) (leaseVersion, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.vs.Client().KVv2(haMount).Get(ctx, c.recordPath(name))
	if errors.Is(err, api.ErrSecretNotFound) {
		return leaseVersion{}, false
	}
	if err != nil {
		c.t.Errorf("read the lease record of %s: %v", name, err)
		return leaseVersion{}, false
	}
	l, err := parseLease(s)
	if err != nil {
		c.t.Errorf("lease record of %s: %v", name, err)
		return l, false
	}
	return l, true
}

// leaseVersions reads every version of a record (at path, relative to the
// lease path), oldest first.
func (c *haCluster) versionsAt(path string) []leaseVersion {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv := c.vs.Client().KVv2(haMount)
	list, err := kv.GetVersionsAsList(ctx, c.leasePath+"/"+path)
	if errors.Is(err, api.ErrSecretNotFound) {
		return nil
	}
	if err != nil {
		c.t.Errorf("list the versions of record %s: %v", path, err)
		return nil
	}
	var out []leaseVersion
	for _, m := range list {
		if m.Destroyed || !m.DeletionTime.IsZero() {
			c.t.Errorf("record %s: version %d was deleted or destroyed", path, m.Version)
			continue
		}
		s, err := kv.GetVersion(ctx, c.leasePath+"/"+path, m.Version)
		if err != nil {
			c.t.Errorf("read version %d of record %s: %v", m.Version, path, err)
			continue
		}
		l, err := parseLease(s)
		if err != nil {
			c.t.Errorf("version %d of record %s: %v", m.Version, path, err)
			continue
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	// When each version was written, and by whom.
	type seen struct {
		at   time.Time
		proc string
	}
	byVersion := map[int]seen{}
	name := path
	for _, p := range c.procs {
		for _, r := range p.tap.all() {
			if r.lease == name && isWrite(r.method) && r.version > 0 {
				byVersion[r.version] = seen{r.at, r.proc}
			}
		}
	}
	for i := range out {
		l := &out[i]
		if s, ok := byVersion[l.version]; ok {
			l.written, l.writer = s.at, s.proc
			continue
		}
		l.written = l.rec.Updated
		if l.holder != "" && l.expires.Add(-c.ttl()).After(l.written) {
			l.written = l.expires.Add(-c.ttl())
		}
	}
	return out
}

func (c *haCluster) leaseVersions(name string) []leaseVersion { return c.versionsAt(name) }

// isBegin: a version that takes the lease (its holder differs from the
// previous version's; a Fence keeps the holder).
func isBegin(vers []leaseVersion, i int) bool {
	return vers[i].holder != "" && (i == 0 || vers[i-1].holder != vers[i].holder)
}

// describeVersions is a record's history for a failure message: version,
// holder, created, pending and confirmed versions (no values exist there).
func describeVersions(vers []leaseVersion) string {
	var b strings.Builder
	for _, l := range vers {
		w := l.writer
		if w == "" {
			w = "?"
		}
		fmt.Fprintf(&b, "\n    v%d written %s by %s holder=%q expires=%s", l.version, l.written.Format("15:04:05.000"), w, l.holder, l.expires.Format("15:04:05.000"))
		if p := l.rec.Pending; p != nil {
			fmt.Fprintf(&b, " pending=v%d", p.VaultVersion)
		}
		if p := l.rec.Confirmed; p != nil {
			fmt.Fprintf(&b, " confirmed=v%d", p.VaultVersion)
		}
		if p := l.rec.Failed; p != nil {
			fmt.Fprintf(&b, " failed=v%d", p.VaultVersion)
		}
	}
	return b.String()
}

// attribute checks that the PATCH p (of KV version v; a rollback PATCH when
// rollback) was made under a lease its sender held: the last version of the
// record written before the PATCH arrived is held by the sender's identity,
// unexpired at that moment, and (but for a rollback) is the Begin of that
// holding or the Fence right after it (made right before the PATCH), both
// with version v pending. It returns the Begin version.
func (c *haCluster) attribute(p hoodReq, name string, vers []leaseVersion, v int, rollback bool) (leaseVersion, bool) {
	c.t.Helper()
	i := -1
	for j, l := range vers {
		if !l.written.After(p.arrived) {
			i = j
		}
	}
	fail := func(why string) (leaseVersion, bool) {
		c.t.Errorf("PATCH of %s (version %d, rollback %v) by %s at %s: %s; record history:%s",
			name, v, rollback, p.proc, p.arrived.Format("15:04:05.000"), why, describeVersions(vers))
		return leaseVersion{}, false
	}
	if i < 0 {
		return fail("no version of the lease record was written before it")
	}
	l := vers[i]
	if l.holder == "" || label(l.holder) != p.proc || (l.writer != "" && l.writer != p.proc) {
		return fail(fmt.Sprintf("the record version before it (v%d) is held by %q, written by %q, not by the sender", l.version, l.holder, l.writer))
	}
	if !l.expires.After(p.arrived) {
		return fail(fmt.Sprintf("the sender's lease (v%d) expired at %s, before the PATCH", l.version, l.expires.Format("15:04:05.000")))
	}
	b := i
	for b > 0 && !isBegin(vers, b) {
		b--
	}
	if !rollback {
		// Begin, then the Fence right before the PATCH (the same holding,
		// the same pending push): the version before the PATCH is one of them.
		if i-b > 1 {
			return fail(fmt.Sprintf("the version before it (v%d) is neither the Begin of the holding (v%d) nor the Fence right after it", l.version, vers[b].version))
		}
		for _, w := range vers[b : i+1] {
			if pd := w.rec.Pending; pd == nil || pd.VaultVersion != v {
				return fail(fmt.Sprintf("version v%d of the holding does not have version %d pending", w.version, v))
			}
		}
	}
	return vers[b], true
}

// checkTakeover: after version begin of a record (a Begin, or a later
// version of the same holding, whose holder died or was cut off before it
// released the lease), nobody else wrote
// the record until that lease (as its holder's Fences extended it)
// expired, and the next Begin is another holder's.
func (c *haCluster) checkTakeover(what, name string, vers []leaseVersion, begin int) {
	c.t.Helper()
	bi := slices.IndexFunc(vers, func(l leaseVersion) bool { return l.version == begin })
	// A version of the holding after its Begin (the Fence right before
	// the PATCH) names the same holding: go back to its Begin.
	for bi > 0 && vers[bi].holder != "" && !isBegin(vers, bi) {
		bi--
	}
	if bi < 0 || !isBegin(vers, bi) {
		c.t.Errorf("%s: version %d of the record of %s is not a Begin; history:%s", what, begin, name, describeVersions(vers))
		return
	}
	b := vers[bi]
	// The holder's own Fences (same holder) extend its lease.
	exp, j := b.expires, bi+1
	for ; j < len(vers) && vers[j].holder == b.holder; j++ {
		if vers[j].expires.After(exp) {
			exp = vers[j].expires
		}
	}
	for _, l := range vers[j:] {
		if l.written.Before(exp) {
			c.t.Errorf("%s: version %d of the record of %s was written at %s, during the lease of %s (until %s); history:%s",
				what, l.version, name, l.written.Format("15:04:05.000"), b.holder, exp.Format("15:04:05.000"), describeVersions(vers))
			return
		}
	}
	for j := bi + 1; j < len(vers); j++ {
		if isBegin(vers, j) {
			if vers[j].holder == b.holder {
				c.t.Errorf("%s: the Begin after version %d of %s is by the same holder %s", what, begin, name, b.holder)
			}
			return
		}
	}
	c.t.Errorf("%s: no Begin after version %d of the record of %s: nobody took over; history:%s", what, begin, name, describeVersions(vers))
}

// checkSentinel: no lease record version, HMAC key version, lease write
// sent to Vault, process log or audit log holds the sentinel or a Vault
// credential.
func (c *haCluster) checkSentinel() {
	versions, writes := 0, 0
	for _, in := range c.f.integs {
		for _, l := range c.leaseVersions(in.name) {
			versions++
			c.f.noSentinel(fmt.Sprintf("lease record %s version %d", in.name, l.version), l.raw)
		}
	}
	for _, l := range c.versionsAt("_meta/hmac-key") {
		versions++
		c.f.noSentinel(fmt.Sprintf("HMAC key record version %d", l.version), l.raw)
	}
	for _, p := range c.procs {
		for _, r := range p.tap.all() {
			if r.body != "" {
				writes++
				c.f.noSentinel("a lease write of "+p.label, r.body)
			}
		}
		b, _ := os.ReadFile(c.f.path("audit-" + p.label + ".log"))
		c.f.noSentinel("audit log of "+p.label, string(b))
	}
	c.mu.Lock()
	ds := slices.Clone(c.daemons)
	c.mu.Unlock()
	for _, d := range ds {
		c.f.noSentinel("log of a rotator process", d.logs.String())
	}
	c.t.Logf("sentinel: checked %d record versions (lease records and HMAC key), %d record writes as sent, 3 audit logs, the logs of %d processes", versions, writes, len(ds))
}
