package cluster

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"zenmux/ledger"
)

// The request-log format rises only once every member says it reads the
// newer one (format.go): a cluster seeded as an earlier build seeded it
// logs one record per charge; a member that does not answer holds the
// format back; once all answer, the leader raises it and every replica,
// hashing alike, logs in it. From then on a node whose build reads an
// older format is refused at join; one of this build joins.
func TestLogFormatRisesWhenEveryMemberReadsIt(t *testing.T) {
	tn, nodes := startCluster(t)
	leader, followers := leaderOf(t, nodes)
	if f := leader.rep.Ledger().LogFormat(); f != ledger.LogFormatEntries {
		t.Fatalf("seeded without a format: %d", f)
	}
	tn.isolate(followers[0].id, true)
	leader.rep.raiseLogFormat()
	if f := leader.rep.Ledger().LogFormat(); f != ledger.LogFormatEntries {
		t.Fatalf("raised to %d while %s could not answer", f, followers[0].id)
	}
	tn.isolate(followers[0].id, false)
	leader, _ = leaderOf(t, nodes)
	leader.rep.raiseLogFormat()
	waitConverged(t, nodes)
	// A node of an earlier build (its join request names no format) is
	// refused; one of this build joins and stores alike.
	old, _ := json.Marshal(ledger.Member{ID: "n4", RaftAddr: "127.0.0.1:1", AdminAddr: "127.0.0.1:2"})
	status, body, err := followers[1].rep.call(leader.admin, "POST", "/internal/v1/join", old, time.Now().Add(5*time.Second))
	if err != nil || status != 400 || !strings.Contains(string(body), "request-log format 0") {
		t.Fatalf("an earlier build's join: %d %s %v", status, body, err)
	}
	nodes = append(nodes, startNode(t, tn, "n4", []string{leader.admin}))
	waitConverged(t, nodes)
	for _, n := range nodes {
		if f := n.rep.Ledger().LogFormat(); f != ledger.LogFormatCurrent {
			t.Errorf("%s logs in format %d, want %d", n.id, f, ledger.LogFormatCurrent)
		}
		if v, err := n.rep.Cluster(); err != nil || v.LogFormat != ledger.LogFormatCurrent {
			t.Errorf("%s: cluster view %+v %v", n.id, v, err)
		}
	}
}
