package cluster

import (
	"testing"

	"zenmux/ledger"
)

// The request-log format rises only once every member says it reads the
// newer one (format.go): a cluster seeded as an earlier build seeded it
// logs one record per charge; a member that does not answer holds the
// format back; once all answer, the leader raises it and every replica,
// hashing alike, logs in it.
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
	for _, n := range nodes {
		if f := n.rep.Ledger().LogFormat(); f != ledger.LogFormatCurrent {
			t.Errorf("%s logs in format %d, want %d", n.id, f, ledger.LogFormatCurrent)
		}
		if v, err := n.rep.Cluster(); err != nil || v.LogFormat != ledger.LogFormatCurrent {
			t.Errorf("%s: cluster view %+v %v", n.id, v, err)
		}
	}
}
