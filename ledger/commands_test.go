package ledger

import (
	"reflect"
	"testing"
	"time"
)

// The command table: every type byte from 1 up is defined once, and the
// traits callers rely on are where the commands' contracts put them.
func TestCommandTable(t *testing.T) {
	last := 0
	for typ, d := range defs {
		if d == nil {
			continue
		}
		if typ != last+1 {
			t.Errorf("type %d defined after %d: bytes are handed out in order from 1, with no gaps", typ, last)
		}
		last = typ
		if d.typ != CmdType(typ) || d.new().Type() != CmdType(typ) {
			t.Errorf("type %d: entry says %d, its struct %d", typ, d.typ, d.new().Type())
		}
	}
	if last < 26 {
		t.Fatalf("commands defined up to byte %d, want the 26 of the log format at least", last)
	}
	leases := map[CmdType]bool{}
	for _, c := range []Command{&LeaseTokens{}, &ReturnTokens{}, &LeaseFlows{}, &ReturnFlows{}} {
		leases[c.Type()] = true
	}
	for _, d := range defs {
		if d == nil {
			continue
		}
		c := d.new()
		if RetrySafe(c) == leases[c.Type()] {
			t.Errorf("%s: retry safe %v", d.name, RetrySafe(c))
		}
		noWait := leases[c.Type()] || c.Type() == (&ChargeBatch{}).Type() || c.Type() == (&ResetNode{}).Type()
		if WaitsLocalApply(c) == noWait {
			t.Errorf("%s: waits for the local apply %v", d.name, WaitsLocalApply(c))
		}
	}
}

// The commands the rule tests do not apply through the fixture: their
// answers reach a follower typed (fixture.do checks the round trip).
func TestCommandAnswersRoundTrip(t *testing.T) {
	f := newFixture(t)
	p := DefaultPlans()[1]
	p.RPM = 33
	if got := f.do(&PutPlan{Plan: p}).Value.(PlanView); got.RPM != 33 {
		t.Fatalf("PutPlan answered %+v", got)
	}
	if got := f.do(&AdvanceClock{Nanos: int64(time.Hour)}).Value.(clockView); got.OffsetSeconds != 3600 {
		t.Fatalf("AdvanceClock answered %+v", got)
	}
	f.must(&SetMember{Member: Member{ID: "n9", RaftAddr: "127.0.0.1:9", AdminAddr: "127.0.0.1:10"}})
	f.must(&RemoveMember{ID: "n9"})
}

// Propose returns the command's own answer type through a Proposer.
func TestProposeTyped(t *testing.T) {
	f := newFixture(t)
	var p Proposer = fixtureProposer{f}
	acct, err := Propose(p, &CreateAccount{ID: "acct-typed", Email: "typed@example.com", Name: "T"})
	if err != nil || acct.ID != "acct-typed" || acct.Plan != "free" {
		t.Fatalf("CreateAccount answered %+v, %v", acct, err)
	}
	res, err := Propose(p, &ChargeBatch{Charges: []Charge{}})
	if err != nil || len(res) != 0 {
		t.Fatalf("an empty batch answered %v, %v", res, err)
	}
	sub := &Subscribe{Idem: Idem{IdemKey: "sub-typed", Fingerprint: "fp"}, AccountID: "acct-typed", Plan: "pro"}
	first, err := Propose(p, sub)
	if err != nil || first.Plan != "pro" {
		t.Fatalf("Subscribe answered %+v, %v", first, err)
	}
	// The repeat answers the stored JSON, read as the same type.
	if again, err := Propose(p, sub); err != nil || !reflect.DeepEqual(again, first) {
		t.Fatalf("the repeated key answered %+v, %v; first %+v", again, err, first)
	}
	if _, err := Propose(p, &CreateAccount{ID: "acct-typed", Email: "typed@example.com"}); err == nil {
		t.Fatal("a repeated account with another name was accepted")
	}
}

type fixtureProposer struct{ f *fixture }

func (p fixtureProposer) Propose(cmd Command) (Result, error) { return p.f.l.Apply(cmd, p.f.now), nil }
