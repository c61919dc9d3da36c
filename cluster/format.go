package cluster

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// The request-log format (ledger.SetLogFormat) is replicated state. A
// cluster an earlier build bootstrapped keeps logging charges as that
// build did until every member runs a build that reads the newer format:
// the leader asks each one (/internal/v1/version) and then proposes it.
// A member that does not answer — down, or an earlier build, which has no
// such path — holds it back; so a rolling upgrade raises it by itself
// within formatCheckEvery of its last node's start.

// formatCheckEvery is how often a leader whose cluster logs in an older
// format than its own asks the members which they read.
const formatCheckEvery = 5 * time.Second

// versionAnswer is a node's answer to /internal/v1/version.
type versionAnswer struct {
	LogFormat int `json:"log_format"`
}

// raiseLogFormat proposes the newest request-log format every member
// reads, when that is newer than the cluster's.
func (r *Replica) raiseLogFormat() {
	r.formatMu.Lock()
	defer r.formatMu.Unlock()
	l := r.store.Ledger()
	have := l.LogFormat()
	if have >= ledger.LogFormatCurrent || !l.Seeded() {
		return
	}
	_, servers, err := r.store.Servers()
	if err != nil {
		return
	}
	admins := r.adminAddrs()
	reads := ledger.LogFormatCurrent
	for _, s := range servers {
		if id := string(s.ID); id != r.ID() {
			f, err := r.peerLogFormat(admins[id])
			if err != nil {
				r.log.Debug().Err(err).Str("node", id).Msg("log format stays: a member did not say which it reads")
				return
			}
			reads = min(reads, f)
		}
	}
	if reads <= have {
		return
	}
	if _, err := ledger.Propose(r, &ledger.SetLogFormat{Format: reads}); err != nil {
		r.log.Warn().Err(err).Msg("raise the request-log format")
		return
	}
	r.log.Info().Int("from", have).Int("to", reads).Msg("every member reads a newer request-log format: the cluster logs charges in it from now on")
}

// peerLogFormat asks a member which request-log format its build reads.
func (r *Replica) peerLogFormat(addr string) (int, error) {
	if addr == "" {
		return 0, fmt.Errorf("no admin address")
	}
	status, body, err := r.call(addr, "GET", "/internal/v1/version", nil, time.Now().Add(2*time.Second))
	if err != nil {
		return 0, err
	}
	if status != fasthttp.StatusOK {
		return 0, fmt.Errorf("answered %d (an earlier build)", status)
	}
	var v versionAnswer
	if err := json.Unmarshal(body, &v); err != nil {
		return 0, fmt.Errorf("bad version answer: %v", err)
	}
	return v.LogFormat, nil
}
