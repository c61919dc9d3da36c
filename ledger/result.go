package ledger

import (
	"encoding/json"
	"fmt"
)

// Result is the outcome of applying one command: its answer, typed by the
// command's apply method, or a rejection (Err; the state is unchanged).
// Callers get the typed answer through Propose or Answer.
type Result struct {
	ans answer
	Err error
}

// answer is a command's answer: a value[R] for the command's R as apply
// returned it, or raw JSON.
type answer interface {
	encode() ([]byte, error)
}

type value[R any] struct{ v R }

func (a value[R]) encode() ([]byte, error) { return json.Marshal(a.v) }

// raw is an answer as JSON: a money command's first answer, returned again
// for a repeat of its key, or the leader's answer on the node that
// forwarded the command. Answer decodes it into the command's R when its
// caller asks, never under the ledger's lock.
type raw []byte

func (a raw) encode() ([]byte, error) { return a, nil }

// Answer unwraps r, the result of applying cmd, into cmd's answer type.
func Answer[R any](cmd Cmd[R], r Result) (R, error) {
	var zero R
	if r.Err != nil {
		return zero, r.Err
	}
	switch a := r.ans.(type) {
	case value[R]:
		return a.v, nil
	case raw:
		var v R
		if err := json.Unmarshal(a, &v); err != nil {
			return zero, fmt.Errorf("ledger: the answer %.200s to %T does not read as %T: %v", a, cmd, v, err)
		}
		return v, nil
	}
	return zero, fmt.Errorf("ledger: %T answered %T", cmd, r.ans)
}

// Rejected is a result that refuses a command with err.
func Rejected(err error) Result { return Result{Err: err} }

// EncodeAnswer is the JSON of a result's answer, for a leader answering a
// forwarded command ("null" for a rejection).
func (r Result) EncodeAnswer() ([]byte, error) {
	if r.ans == nil {
		return []byte("null"), nil
	}
	return r.ans.encode()
}

// Answered is the result whose answer is the JSON another node encoded
// with EncodeAnswer; Answer reads it typed.
func Answered(answerJSON []byte) Result { return Result{ans: raw(answerJSON)} }

// Proposer commits commands: a node, which proposes on the leader or
// forwards to it. An error means the command was not committed, or its
// outcome is unknown; a rejection by the ledger comes back in Result.Err.
type Proposer interface {
	Propose(cmd Command) (Result, error)
}

// Propose commits cmd through p and returns its typed answer.
func Propose[R any](p Proposer, cmd Cmd[R]) (R, error) {
	r, err := p.Propose(cmd)
	if err != nil {
		var zero R
		return zero, err
	}
	return Answer(cmd, r)
}
